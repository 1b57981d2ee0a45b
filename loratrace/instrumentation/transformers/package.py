"""The libraries this instrumentor patches.

Only transformers is required: ``BaseInstrumentor`` refuses to instrument when any entry of
``instrumentation_dependencies()`` is missing, and a plain transformers model (no PEFT) is worth tracing. PEFT
is patched when it is imported, if its version is in ``_peft_instruments``.
"""

_instruments = ("transformers >= 4.45",)
_peft_instruments = ("peft >= 0.13",)
