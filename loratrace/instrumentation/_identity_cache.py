"""Values kept per live object (a model, an adapter tuner), looked up by identity on every model call.

A ``WeakKeyDictionary`` lookup is a Python call that builds a weak reference each time: a few hundred
nanoseconds warm, several microseconds in a serving thread whose caches the model call has just flushed. Here the
lookup is ``by_id.get(id(obj))``, two C calls; a weak reference per object (made once, when its value is stored)
drops the entry when the object is collected, before its id can be reused.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    __slots__ = ("_references", "by_id")

    def __init__(self) -> None:
        self.by_id: dict[int, V] = {}
        self._references: dict[int, weakref.ref[Any]] = {}

    def get(self, obj: Any) -> V | None:
        return self.by_id.get(id(obj))

    def __setitem__(self, obj: Any, value: V) -> None:
        """Raises TypeError for an object that cannot be weakly referenced (as a WeakKeyDictionary does)."""
        key = id(obj)
        if key not in self._references:
            self._references[key] = weakref.ref(obj, self._forgetter(key))
        self.by_id[key] = value

    def pop(self, obj: Any) -> V | None:
        key = id(obj)
        self._references.pop(key, None)
        return self.by_id.pop(key, None)

    def __len__(self) -> int:
        return len(self.by_id)

    def _forgetter(self, key: int) -> Any:
        by_id, references = self.by_id, self._references

        def forget(_reference: weakref.ref[Any]) -> None:
            by_id.pop(key, None)
            references.pop(key, None)

        return forget
