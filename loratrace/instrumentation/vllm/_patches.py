"""vLLM's patches, made with the shared toolkit (``loratrace.instrumentation.patching``)."""

from __future__ import annotations

from loratrace.instrumentation.patching import Patches

PATCHES = Patches("vLLM")
