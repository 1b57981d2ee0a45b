"""A timer installed beneath any instrumentation, shared by the overhead benchmarks."""

from __future__ import annotations

import functools
import time
from typing import Any


class InnerTimer:
    """Times one method (the library's own work: ``GenerationMixin.generate``, ``LLM.generate``), installed on its
    class before instrumentation wraps it, so that a call's duration minus its inner time is what the code around
    it -- pipeline, PEFT, loratrace's wrappers -- took in that very call. Both are read from the same call, so the
    host's drift cancels out; what the wrappers cost the inner work itself (evicted caches, a background burst)
    does not appear."""

    def __init__(self, owner: type, method: str = "generate") -> None:
        self.owner = owner
        self.method = method
        self.original = owner.__dict__[method]
        self.last_ns = 0

    def install(self) -> None:
        original = self.original

        def timed(instance: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return original(instance, *args, **kwargs)
            finally:
                self.last_ns = time.perf_counter_ns() - started

        functools.update_wrapper(timed, original)
        setattr(self.owner, self.method, timed)

    def remove(self) -> None:
        setattr(self.owner, self.method, self.original)
