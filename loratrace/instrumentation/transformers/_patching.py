"""Patch transformers and PEFT when they are imported, and unpatch exactly.

``loratrace.instrument()`` must not import transformers or PEFT itself (importing them costs seconds), so each
target module gets a wrapt post-import hook that patches it when it is imported, or at once when it already
is. Hooks cannot be unregistered: they check ``Settings.enabled`` and do nothing after ``uninstrument()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from loratrace.instrumentation.transformers import _wrappers
from loratrace.instrumentation.transformers.package import _peft_instruments
from loratrace.runtime.recorder import GenerationRecorder, capture_content_enabled

logger = logging.getLogger(__name__)

SETTINGS = _wrappers.Settings()
_patched: list[tuple[type, str, Any]] = []  # (class, attribute, the wrapper installed)
_patched_modules: set[str] = set()


def _wrap(owner: type, name: str, wrapper: _wrappers.Wrapper) -> None:
    if isinstance(owner.__dict__.get(name), wrapt.FunctionWrapper):
        logger.debug("%s.%s is already wrapped; leaving it", owner.__qualname__, name)
        return
    wrapt.wrap_function_wrapper(owner, name, wrapper)
    _patched.append((owner, name, owner.__dict__[name]))


def _patch_generation(module: ModuleType) -> None:
    _wrap(module.GenerationMixin, "generate", _wrappers.generate_wrapper(SETTINGS))


def _patch_pipelines(module: ModuleType) -> None:
    # The pipeline wrapper only hands the tokenizer to content capture; without capture it would be a wrapper
    # frame on every pipeline call for nothing.
    if SETTINGS.capture_content:
        _wrap(module.Pipeline, "__call__", _wrappers.pipeline_wrapper(SETTINGS))


def _peft_supported() -> bool:
    conflict = get_dependency_conflicts(_peft_instruments)
    if conflict is not None:
        logger.debug("PEFT not instrumented: %s", conflict)
        return False
    return True


def _patch_peft_model(module: ModuleType) -> None:
    if not _peft_supported():
        return
    peft_model = module.PeftModel
    _wrap(peft_model, "load_adapter", _wrappers.load_adapter_wrapper(SETTINGS))
    generate = _wrappers.peft_generate_wrapper(SETTINGS)
    # PeftModel and every task class that overrides generate (PeftModelForCausalLM, ...ForSeq2SeqLM)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, peft_model) and "generate" in value.__dict__:
            _wrap(value, "generate", generate)


def _patch_tuners(module: ModuleType) -> None:
    if not _peft_supported():
        return
    _wrap(module.BaseTuner, "merge_and_unload", _wrappers.merge_and_unload_wrapper(SETTINGS))
    _wrap(module.BaseTuner, "unload", _wrappers.unload_wrapper(SETTINGS))


_TARGETS: dict[str, Callable[[ModuleType], None]] = {
    "transformers.generation.utils": _patch_generation,
    "transformers.pipelines.base": _patch_pipelines,
    "peft.peft_model": _patch_peft_model,
    "peft.tuners.tuners_utils": _patch_tuners,
}


def _on_import(module: ModuleType) -> None:
    name = module.__name__
    if not SETTINGS.enabled or name in _patched_modules:
        return
    _patched_modules.add(name)
    try:
        _TARGETS[name](module)
    except Exception:
        logger.debug("loratrace could not patch %s; it stays untraced", name, exc_info=True)


def enable(recorder: GenerationRecorder) -> None:
    SETTINGS.recorder = recorder
    SETTINGS.capture_content = capture_content_enabled()
    SETTINGS.enabled = True
    for name in _TARGETS:
        wrapt.register_post_import_hook(_on_import, name)


def disable() -> GenerationRecorder | None:
    """Remove the patches; returns the recorder they used, to close once its queued spans are built."""
    SETTINGS.enabled = False
    while _patched:
        owner, name, installed = _patched.pop()
        current = owner.__dict__.get(name)
        if current is installed:
            setattr(owner, name, installed.__wrapped__)
        else:  # someone wrapped over us: unwrapping now would remove their wrapper too
            logger.debug("%s.%s was re-wrapped by another library; leaving it", owner.__qualname__, name)
    _patched_modules.clear()
    recorder, SETTINGS.recorder = SETTINGS.recorder, None
    return recorder
