"""Adapter identity for vLLM's ``LoRARequest``: computed once per adapter folder and cached.

The id hashes every weight of the adapter, so it is computed the first time a path is seen (at load time on
the server, at the first request offline) and never on the per-request path again. A folder that cannot be
read still gets a span: name and source only.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from loratrace import semconv
from loratrace.instrumentation._adapter_identity import AdapterIdentity, identity_from_directory

logger = logging.getLogger(__name__)


class AdapterCache:
    """``(path, name) -> AdapterIdentity``; thread-safe, computed outside the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._identities: dict[tuple[str, str], AdapterIdentity] = {}

    def identity(self, lora_request: Any) -> AdapterIdentity:
        name = str(getattr(lora_request, "lora_name", "") or "")
        path = str(getattr(lora_request, "lora_path", "") or "")
        key = (path, name)
        cached = self._identities.get(key)
        if cached is not None:
            return cached
        identity = _read_identity(path, name)
        with self._lock:
            return self._identities.setdefault(key, identity)

    def refresh(self, path: str, name: str) -> AdapterIdentity:
        """Recompute after a (re)load: the same path may now hold new weights."""
        identity = _read_identity(path, name)
        with self._lock:
            self._identities[(path, name)] = identity
        return identity


# vLLM applies LoRA weights beside the base weights and never merges them.
_NOT_MERGED = {semconv.ADAPTER_MERGED: False}


def _read_identity(path: str, name: str) -> AdapterIdentity:
    if not path:
        return AdapterIdentity(name=name, extra=_NOT_MERGED)
    try:
        return dataclasses.replace(identity_from_directory(path, name), extra=_NOT_MERGED)
    except Exception:
        logger.debug("loratrace could not read the adapter at %r", path, exc_info=True)
        return AdapterIdentity(name=name, source=path, extra=_NOT_MERGED)


ADAPTERS = AdapterCache()
