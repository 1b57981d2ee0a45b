"""The per-object caches the instrumentors consult on every model call."""

from __future__ import annotations

import gc

import pytest

from loratrace.instrumentation._identity_cache import IdentityCache


class Model:
    pass


def test_values_are_found_by_identity_and_dropped_when_the_object_dies():
    cache: IdentityCache[str] = IdentityCache()
    first, second = Model(), Model()
    cache[first] = "first"
    cache[second] = "second"
    assert cache.get(first) == "first"
    assert cache.by_id.get(id(second)) == "second"
    assert cache.get(Model()) is None
    del first
    gc.collect()
    assert len(cache) == 1
    assert cache.get(second) == "second"


def test_a_value_can_be_replaced_and_popped():
    cache: IdentityCache[int] = IdentityCache()
    model = Model()
    cache[model] = 1
    cache[model] = 2
    assert cache.get(model) == 2
    assert cache.pop(model) == 2
    assert cache.pop(model) is None
    cache[model] = 3  # stored again after a pop: still dropped when the object dies
    del model
    gc.collect()
    assert len(cache) == 0


def test_objects_without_weak_references_are_refused_like_a_weak_dictionary():
    cache: IdentityCache[int] = IdentityCache()
    with pytest.raises(TypeError):
        cache[42] = 1
    assert len(cache) == 0
