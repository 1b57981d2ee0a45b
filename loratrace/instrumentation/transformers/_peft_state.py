"""Which adapter a PeftModel is serving right now, read cheaply at every generate call.

Costly facts are computed once and cached per tuner (the ``LoraModel`` under ``PeftModel.base_model``): the
adapter's identity (a content hash of its config and weights) per adapter name and config object, one LoRA
layer per adapter (to read the merge / disable flags from), and where each adapter was loaded from. Per call
we only read a few attributes: the active adapters, ``PeftModel._adapters_disabled`` (set by
``disable_adapter()``), the cached layer's ``disable_adapters`` flag (set by ``disable_adapter_layers()``) and
its ``merged_adapters``.

Several active adapters (``set_adapter(["a1", "a2"])``) are reported as one combined adapter: the name is the
sorted names joined by ``+``, ``loratrace.adapter.names`` lists them, and the id is a hash of the sorted
member ids, so the combination is stable and distinct from each member. Rank and alpha are reported only when
all members agree; target modules are the union.

A model returned by ``merge_and_unload()`` keeps no trace of its adapter, so the merge is recorded (weakly
keyed by the returned model) and its generate spans report the adapter with ``merged=True``.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from loratrace import semconv
from loratrace._values import number_or_none
from loratrace.instrumentation._adapter_identity import (
    AdapterIdentity,
    adapter_type,
    content_id,
    identity_config,
    iter_torch_state_dict,
    target_modules,
)
from loratrace.instrumentation._identity_cache import IdentityCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # hashed by identity: part of the span-attribute cache key
class AdapterReading:
    """What one generate call reports about its adapter; ``None`` fields mean no adapter served."""

    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class _Single:
    """What the common case, one active adapter, needs per call: the readings to report and the layer whose
    flags say whether the adapter is disabled or merged, valid while the adapter's config object is ``config``."""

    config: Any
    layer: Any | None
    unmerged: AdapterReading
    merged: AdapterReading


@dataclass
class TunerState:
    """Cached facts about one PEFT tuner (``LoraModel``), shared by the PeftModel that owns it."""

    singles: dict[str, _Single] = field(default_factory=dict)
    identities: dict[str, tuple[Any, AdapterIdentity]] = field(default_factory=dict)
    combined: dict[tuple[str, ...], AdapterIdentity] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    readings: dict[tuple[str, str | None, bool], AdapterReading] = field(default_factory=dict)


_TUNERS: weakref.WeakKeyDictionary[Any, TunerState] = weakref.WeakKeyDictionary()
# model returned by merge_and_unload() -> the adapter merged into it
_MERGED_MODELS: IdentityCache[AdapterReading] = IdentityCache()
_MERGED_BY_ID = _MERGED_MODELS.by_id
# transformers model under a PeftModel -> the PeftModel, for generate calls made on the inner model directly
_OWNERS: IdentityCache[weakref.ref[Any]] = IdentityCache()
_OWNERS_BY_ID = _OWNERS.by_id
_PROMPT_LEARNING: dict[tuple[str, str | None, bool], AdapterReading] = {}


def tuner_state(tuner: Any) -> TunerState:
    state = _TUNERS.get(tuner)
    if state is None:
        state = TunerState()
        _TUNERS[tuner] = state
    return state


def remember_owner(peft_model: Any, inner_model: Any) -> None:
    _OWNERS[inner_model] = weakref.ref(peft_model)


def owner_of(model: Any) -> Any | None:
    """The PeftModel wrapping ``model`` when loratrace has seen one (its LoRA layers live in ``model``)."""
    reference = _OWNERS_BY_ID.get(id(model))
    return reference() if reference is not None else None


def record_source(tuner: Any, adapter_name: str, model_id: Any, revision: str | None) -> None:
    source = str(model_id)
    if revision:
        source = f"{source}@{revision}"
    tuner_state(tuner).sources[adapter_name] = source


def merged_adapter(model: Any) -> AdapterReading | None:
    return _MERGED_BY_ID.get(id(model))


def record_merge(merged_model: Any, reading: AdapterReading) -> None:
    _MERGED_MODELS[merged_model] = AdapterReading(reading.name, {**reading.attributes, semconv.ADAPTER_MERGED: True})


def _identity(tuner: Any, state: TunerState, name: str) -> AdapterIdentity:
    """Adapter ``name``'s identity, hashed once per config object (a reload under the same name re-hashes)."""
    config = tuner.peft_config[name]
    cached = state.identities.get(name)
    if cached is not None and cached[0] is config:
        return cached[1]
    config_dict = config.to_dict()
    identity = AdapterIdentity(
        name=name,
        id=_content_hash(tuner, name, config_dict),
        type=adapter_type(config_dict),
        rank=number_or_none(config_dict.get("r"), int),
        alpha=number_or_none(config_dict.get("lora_alpha"), float),
        target_modules=target_modules(config_dict),
        source=state.sources.get(name),
        base_model=config_dict.get("base_model_name_or_path"),
    )
    state.identities[name] = (config, identity)
    return identity


def _content_hash(tuner: Any, name: str, config_dict: dict[str, Any]) -> str | None:
    """The id of the adapter's in-memory weights, equal to the id of the folder it was saved to."""
    try:
        from peft.utils import get_peft_model_state_dict
        from peft.utils.constants import EMBEDDING_LAYER_NAMES

        # Embedding layers as save_pretrained's "auto" decides for targeted embeddings, without its other
        # check, which looks the base model up on the Hub (a network call in the middle of a user's generate).
        targets = config_dict.get("target_modules") or ()
        with_embeddings = not isinstance(targets, str) and any(layer in targets for layer in EMBEDDING_LAYER_NAMES)
        state_dict = get_peft_model_state_dict(tuner, adapter_name=name, save_embedding_layers=with_embeddings)
        # Keys as PeftModel.save_pretrained writes them: the PeftModel holds the tuner as its ``base_model``.
        weights = {f"base_model.{key}": value for key, value in state_dict.items()}
        return content_id(identity_config(config_dict), iter_torch_state_dict(weights))
    except Exception:
        # cached like a success: the adapter is still reported (without an id), and the failure is not retried
        logger.debug("loratrace could not hash the weights of adapter %r", name, exc_info=True)
        return None


def _combined(state: TunerState, members: list[AdapterIdentity]) -> AdapterIdentity:
    key = tuple(member.id or member.name for member in members)
    identity = state.combined.get(key)
    if identity is not None:
        return identity
    digest = hashlib.sha256(b"loratrace-adapter-combination-v1\x00")
    for member_id in key:
        digest.update(member_id.encode() + b"\x00")
    ranks = {member.rank for member in members}
    alphas = {member.alpha for member in members}
    types = {member.type for member in members}
    identity = AdapterIdentity(
        name="+".join(member.name for member in members),
        id=f"sha256:{digest.hexdigest()}",
        type=types.pop() if len(types) == 1 else None,
        rank=ranks.pop() if len(ranks) == 1 else None,
        alpha=alphas.pop() if len(alphas) == 1 else None,
        target_modules=tuple(sorted({module for member in members for module in member.target_modules})),
        extra={semconv.ADAPTER_NAMES: [member.name for member in members]},
    )
    state.combined[key] = identity
    return identity


def _layer(tuner: Any, state: TunerState, name: str) -> Any | None:
    """One tuner layer holding adapter ``name`` (its merge and disable flags stand for the whole model)."""
    if name in state.layers:
        return state.layers[name]
    from peft.tuners.tuners_utils import BaseTunerLayer

    found = None
    for module in tuner.modules():
        if isinstance(module, BaseTunerLayer) and name in module._get_available_adapters():
            found = module
            break
    state.layers[name] = found
    return found


def read_adapter(peft_model: Any, tuner: Any, state: TunerState) -> AdapterReading | None:
    """The adapter serving a generate call on ``peft_model`` now, or None when adapters are disabled.

    ``state`` is ``tuner_state(tuner)``, looked up once per PeftModel by the caller."""
    if getattr(peft_model, "_adapters_disabled", False):
        return None
    if getattr(peft_model, "_is_prompt_learning", False):  # prompt tuning: no weights merged into layers
        name = peft_model.active_adapter
        kind = adapter_type({"peft_type": peft_model.peft_config[name].peft_type})
        key = (name, kind, False)
        reading = _PROMPT_LEARNING.get(key)
        if reading is None:
            reading = _PROMPT_LEARNING[key] = AdapterReading(
                name, {semconv.ADAPTER_NAME: name, semconv.ADAPTER_TYPE: kind}
            )
        return reading
    names = tuner.active_adapters
    if not names:
        return None
    if len(names) == 1:  # the common case, read with as few lookups as possible: it runs on every call
        name = names[0]
        single = state.singles.get(name)
        if single is None or single.config is not tuner.peft_config[name]:
            single = _single(tuner, state, name)
        layer = single.layer
        if layer is None:
            return single.unmerged
        if layer.disable_adapters:
            return None
        merged_names = layer.merged_adapters
        return single.merged if merged_names and name in merged_names else single.unmerged
    layer_names = sorted(names)
    identity = _combined(state, [_identity(tuner, state, name) for name in layer_names])
    layer = _layer(tuner, state, layer_names[0])
    merged = False
    if layer is not None:
        if layer.disable_adapters:
            return None
        merged_names = layer.merged_adapters
        merged = bool(merged_names) and all(name in merged_names for name in layer_names)
    return _reading(state, identity, merged)


def _reading(state: TunerState, identity: AdapterIdentity, merged: bool) -> AdapterReading:
    key = (identity.name, identity.id, merged)
    reading = state.readings.get(key)
    if reading is None:
        reading = AdapterReading(identity.name, {**identity.attributes, semconv.ADAPTER_MERGED: merged})
        state.readings[key] = reading
    return reading


def _single(tuner: Any, state: TunerState, name: str) -> _Single:
    identity = _identity(tuner, state, name)
    single = _Single(
        config=tuner.peft_config[name],
        layer=_layer(tuner, state, name),
        unmerged=_reading(state, identity, False),
        merged=_reading(state, identity, True),
    )
    state.singles[name] = single
    return single


def read_merging(tuner: Any, adapter_names: list[str] | None) -> AdapterReading | None:
    """The adapter ``merge_and_unload(adapter_names=...)`` is about to merge (default: the active ones)."""
    names = list(adapter_names) if adapter_names else list(tuner.active_adapters)
    if not names:
        return None
    state = tuner_state(tuner)
    if len(names) == 1:
        identity = _identity(tuner, state, names[0])
    else:
        identity = _combined(state, [_identity(tuner, state, name) for name in sorted(names)])
    return AdapterReading(identity.name, dict(identity.attributes))


def forget_owner(model: Any) -> None:
    _OWNERS.pop(model)
