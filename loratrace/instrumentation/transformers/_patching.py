"""What gets patched in transformers and PEFT, with the shared toolkit (``loratrace.instrumentation.patching``).

``loratrace.instrument()`` must not import transformers or PEFT itself (importing them costs seconds): each target
module is patched when it is imported, or at once when it already is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from loratrace.instrumentation.settings import Settings
from loratrace.instrumentation.transformers import _wrappers
from loratrace.instrumentation.transformers._wrappers import PATCHES
from loratrace.instrumentation.transformers.package import _peft_instruments

logger = logging.getLogger(__name__)


def _peft_supported() -> bool:
    conflict = get_dependency_conflicts(_peft_instruments)
    if conflict is not None:
        logger.debug("PEFT not instrumented: %s", conflict)
        return False
    return True


def patchers(settings: Settings) -> dict[str, list[Callable[[ModuleType], None]]]:
    def patch_generation(module: ModuleType) -> None:
        PATCHES.wrap(module, "GenerationMixin.generate", _wrappers.generate_wrapper(settings))

    def patch_pipelines(module: ModuleType) -> None:
        # The pipeline wrapper only hands the tokenizer to content capture; without capture it would be a wrapper
        # frame on every pipeline call for nothing.
        if settings.capture_content:
            PATCHES.wrap(module, "Pipeline.__call__", _wrappers.pipeline_wrapper(settings))

    def patch_peft_model(module: ModuleType) -> None:
        if not _peft_supported():
            return
        peft_model = module.PeftModel
        PATCHES.wrap(peft_model, "load_adapter", _wrappers.load_adapter_wrapper(settings))
        generate = _wrappers.peft_generate_wrapper(settings)
        # PeftModel and every task class that overrides generate (PeftModelForCausalLM, ...ForSeq2SeqLM)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, peft_model) and "generate" in value.__dict__:
                PATCHES.wrap(value, "generate", generate)

    def patch_tuners(module: ModuleType) -> None:
        if not _peft_supported():
            return
        PATCHES.wrap(module, "BaseTuner.merge_and_unload", _wrappers.merge_and_unload_wrapper(settings))
        PATCHES.wrap(module, "BaseTuner.unload", _wrappers.unload_wrapper(settings))

    return {
        "transformers.generation.utils": [patch_generation],
        "transformers.pipelines.base": [patch_pipelines],
        "peft.peft_model": [patch_peft_model],
        "peft.tuners.tuners_utils": [patch_tuners],
    }
