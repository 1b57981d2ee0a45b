"""What loratrace's span runtime takes from the OpenTelemetry SDK beyond its API: exactly these parts, in one module.

The deferred generation span builds its SDK span on another thread, under ids announced during the call; that
needs the SDK tracer's id generator, its sampler and its span processor. An SDK release that renames or stops
reading one of them breaks the runtime; these tests name each part and check the installed SDK still has it and
still uses it as the runtime expects. A new use of the SDK anywhere on the span path fails the first tests until
it is added here (and to ``loratrace.runtime.generation``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON, ParentBased

import loratrace
from loratrace.runtime import generation
from loratrace.runtime.recorder import GenerationRecorder

PACKAGE = Path(loratrace.__file__).parent
COUPLING = PACKAGE / "runtime" / "generation.py"
# the modules a generation span passes through, from the wrapped call to the span processor
SPAN_PATH = sorted(
    [
        *(PACKAGE / "runtime").glob("*.py"),
        *(PACKAGE / "instrumentation").rglob("*.py"),
    ]
)
# what builds providers and exporters (not the span path): they use the SDK's public construction API
PROVIDER_BUILDERS = {PACKAGE / "runtime" / "watched_exporters.py", PACKAGE / "runtime" / "span_sender.py"}

BASE_MODEL_CALL = {
    "operation": "text_completion",
    "request_model": "tiny-llama",
    "response_model": "tiny-llama",
    "attributes": {},
    "adapter_name": None,
    "base_model": "tiny-llama",
}
SDK_NAMES = {"IdGenerator", "RandomIdGenerator", "DEFAULT_ON"}
TRACER_ATTRIBUTES = {"id_generator", "sampler", "span_processor"}


def _runtime_sdk_imports(path: Path) -> set[str]:
    """Names imported from ``opentelemetry.sdk`` outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            type_only.update(id(child) for child in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry.sdk"):
            names.update(alias.name for alias in node.names)
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("opentelemetry.sdk"))
    return names


def _tracer_attributes(path: Path) -> set[str]:
    """Attributes read with ``getattr(<...tracer>, "name")`` or assigned as ``<...tracer>.name = ...``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr" and len(node.args) >= 2:
            owner, name = node.args[0], node.args[1]
            if "tracer" in ast.unparse(owner) and isinstance(name, ast.Constant):
                found.add(name.value)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and "tracer" in ast.unparse(target.value):
                    found.add(target.attr)
    return found


def test_only_the_coupling_module_imports_the_sdk_on_the_span_path():
    importing = {
        path.relative_to(PACKAGE).as_posix(): names
        for path in SPAN_PATH
        if path not in PROVIDER_BUILDERS and (names := _runtime_sdk_imports(path))
    }
    assert importing == {"runtime/generation.py": SDK_NAMES}


def test_only_the_coupling_module_reaches_into_an_sdk_tracer_and_only_for_these_parts():
    reaching = {
        path.relative_to(PACKAGE).as_posix(): attributes
        for path in SPAN_PATH
        if (attributes := _tracer_attributes(path))
    }
    assert reaching == {"runtime/generation.py": TRACER_ATTRIBUTES}


def test_the_sdk_tracer_still_has_the_parts_the_runtime_uses():
    provider = TracerProvider()
    tracer = provider.get_tracer("coupling-test")
    assert isinstance(tracer.id_generator, IdGenerator)
    assert tracer.sampler is DEFAULT_ON  # the default the runtime answers for itself instead of asking
    assert callable(tracer.span_processor.force_flush)
    assert isinstance(RandomIdGenerator().generate_span_id(), int)


def test_the_sdk_reads_the_id_generator_when_a_span_starts_so_announced_ids_become_the_spans_ids():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("coupling-test")
    announced, new_ids = generation.lend_announced_ids(tracer)
    assert announced is not None
    assert tracer.id_generator is announced
    announced.announce(0x1234, 0x5678)
    try:
        tracer.start_span("announced").end()
    finally:
        announced.clear()
    (span,) = exporter.get_finished_spans()
    assert (span.context.trace_id, span.context.span_id) == (0x1234, 0x5678)
    generation.return_announced_ids(tracer, announced)
    assert tracer.id_generator is new_ids  # the provider's own generator is back


def test_a_recorder_asks_the_tracers_sampler_for_the_flags_it_announces():
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    recorder = GenerationRecorder(provider.get_tracer("coupling-test"), None, provider="test")
    try:
        started = recorder.start(**BASE_MODEL_CALL)
        assert not started.get_span_context().trace_flags.sampled
        started.finish()
    finally:
        recorder.close()
        provider.shutdown()


def test_a_recorder_exports_through_the_tracers_span_processor():
    provider = TracerProvider()
    recorder = GenerationRecorder(provider.get_tracer("coupling-test"), None, provider="test")
    try:
        assert recorder.request_export is not None
        assert recorder.request_export.args[0] == provider.get_tracer("coupling-test").span_processor.force_flush
    finally:
        recorder.close()
        provider.shutdown()
