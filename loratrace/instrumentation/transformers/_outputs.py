"""Request parameters in, token counts and finish reasons out, read from one generate call.

Kept to a few attribute reads and one ``tolist()`` of the generated ids: a Python scan of a few dozen ints is
cheaper than the several small torch ops a vectorised count would take.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from loratrace import semconv
from loratrace.instrumentation._common_attributes import SAMPLING_PARAMETERS
from loratrace.instrumentation.transformers._model_info import ModelInfo, default_max_new_tokens

# (generate keyword, span attribute) for the parameters a caller sets
_REQUEST_PARAMETERS = (
    ("max_new_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    *SAMPLING_PARAMETERS,
    ("num_return_sequences", semconv.GEN_AI_REQUEST_CHOICE_COUNT),
)
# also in llm.invocation_parameters
_OTHER_PARAMETERS = ("max_length", "do_sample", "num_beams", "repetition_penalty", "stop_strings")
PARAMETER_NAMES = tuple(name for name, _ in _REQUEST_PARAMETERS) + _OTHER_PARAMETERS
# Below this many mask entries a Python sum over tolist() beats a torch reduction (one op instead of two).
_SMALL_MASK = 4096


class GenerateCall:
    """One generate call's arguments: its parameters (keyword arguments, then ``generation_config=``, then the
    model's) and its prompt.

    Every source is snapshotted at the call: the values are read after it returns, on the finisher thread, when
    the caller may already have changed a config, and holding the caller's keyword arguments until then would
    keep whatever they reference (a key-value cache, images) alive.
    """

    __slots__ = ("_sources", "attention_mask", "embedded_tokens", "input_ids", "tokenizer")

    def __init__(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], model_config: Any) -> None:
        passed = kwargs.get("generation_config")
        keywords = tuple(map(kwargs.get, _SNAPSHOT_NAMES))
        model_values = _snapshot(model_config)
        self._sources = (keywords, _snapshot(passed), model_values) if passed is not None else (keywords, model_values)
        ids = kwargs.get("input_ids")
        if ids is None:
            ids = kwargs.get("inputs")  # generate's first parameter
            if ids is None and args:
                ids = args[0]
        self.input_ids = ids
        self.attention_mask = kwargs.get("attention_mask")
        self.tokenizer = kwargs.get("tokenizer")  # generate(tokenizer=...), for content capture
        # prompt positions given as inputs_embeds (their tensor is not kept)
        self.embedded_tokens = None
        if ids is None:
            embeds = kwargs.get("inputs_embeds")
            if embeds is not None:
                self.embedded_tokens = int(embeds.shape[0] * embeds.shape[1])

    def get(self, name: str) -> Any:
        position = _SNAPSHOT_POSITION[name]
        for values in self._sources:
            value = values[position]
            if value is not None:
                return value
        return None

    def request_values(self) -> tuple[Any, ...]:
        """The parameter values in ``PARAMETER_NAMES`` order (None when unset): a cache key for the span."""
        get = self.get
        return tuple([get(name) for name in PARAMETER_NAMES])


_SNAPSHOT_NAMES = (*PARAMETER_NAMES, "pad_token_id", "eos_token_id")
_SNAPSHOT_POSITION = {name: position for position, name in enumerate(_SNAPSHOT_NAMES)}


def _snapshot(config: Any) -> tuple[Any, ...]:
    """The values ``GenerateCall.get`` reads from a generation config, in ``_SNAPSHOT_NAMES`` order."""
    try:
        return tuple(map(vars(config).get, _SNAPSHOT_NAMES))  # one C-level pass over the instance dict
    except TypeError:  # an object without a __dict__
        return tuple(getattr(config, name, None) for name in _SNAPSHOT_NAMES)


def request_attributes(values: tuple[Any, ...]) -> dict[str, Any]:
    """GenAI request attributes and ``llm.invocation_parameters`` from :meth:`GenerateCall.request_values`."""
    attributes: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    for (_name, attribute), value in zip(_REQUEST_PARAMETERS, values, strict=False):
        if value is not None:
            attributes[attribute] = value
    for name, value in zip(PARAMETER_NAMES, values, strict=True):
        if value is not None:
            parameters[name] = value
    if parameters:
        attributes[semconv.LLM_INVOCATION_PARAMETERS] = json.dumps(parameters, default=str)
    return attributes


def count_input_tokens(call: GenerateCall, pad_token_id: Any) -> int | None:
    """Prompt tokens without padding: the attention mask's sum, else ids that are not the pad token."""
    mask = call.attention_mask
    if mask is not None:
        if mask.numel() <= _SMALL_MASK:
            return sum(map(sum, mask.tolist()))
        return int(mask.sum())
    input_ids = call.input_ids
    if input_ids is None:
        return call.embedded_tokens
    if isinstance(pad_token_id, int):
        return int((input_ids != pad_token_id).sum())
    return int(input_ids.numel())


def _token_set(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, int):
        return frozenset((value,))
    if hasattr(value, "tolist"):
        value = value.tolist()
    return frozenset(int(v) for v in (value if isinstance(value, list | tuple) else [value]))


def max_new_tokens(call: GenerateCall, info: ModelInfo, prompt_width: int) -> int:
    """The length limit this call ran with, as transformers resolves it (``max_new_tokens`` wins)."""
    limit = call.get("max_new_tokens")
    if isinstance(limit, int):
        return limit
    start = 1 if info.is_encoder_decoder else prompt_width
    max_length = call.get("max_length")
    if isinstance(max_length, int):
        return max_length - start
    limit = default_max_new_tokens()
    if info.max_position_embeddings is not None and not info.is_encoder_decoder:
        limit = min(limit, info.max_position_embeddings - prompt_width)
    return limit


def completion(
    sequences: Any, call: GenerateCall, info: ModelInfo, prompt_width: int
) -> tuple[int, list[str], list[list[int]]]:
    """Output tokens summed over the returned sequences, one finish reason each, and the generated ids.

    A sequence ends with ``stop`` at its first end-of-sequence token (counted), or when another stopping
    criterion (a stop string) ended it early: transformers then pads the rest, and padding is not counted. A
    sequence that ran to the length limit ends with ``length``.
    """
    counts, reasons, generated = completion_rows(sequences, call, info, prompt_width)
    return sum(counts), reasons, generated


def completion_rows(
    sequences: Any, call: GenerateCall, info: ModelInfo, prompt_width: int
) -> tuple[list[int], list[str], list[list[int]]]:
    """:func:`completion` for each returned sequence: its output tokens, finish reason and generated ids."""
    start = 1 if info.is_encoder_decoder else prompt_width
    rows: list[list[int]] = sequences.tolist()
    eos = _token_set(call.get("eos_token_id"))
    pad = call.get("pad_token_id")
    limit = max_new_tokens(call, info, prompt_width)
    counts: list[int] = []
    reasons: list[str] = []
    generated: list[list[int]] = []
    single_eos = next(iter(eos)) if len(eos) == 1 else None
    for full_row in rows:
        row = full_row[start:]
        end = _first_eos(row, eos, single_eos)
        if end is not None:
            reason = semconv.FINISH_STOP
        else:
            end = len(row)
            while end and row[end - 1] == pad:
                end -= 1
            reason = semconv.FINISH_LENGTH if end >= limit else semconv.FINISH_STOP
        counts.append(end)
        reasons.append(reason)
        generated.append(row[:end])
    return counts, reasons, generated


def input_tokens_per_row(call: GenerateCall, pad_token_id: Any) -> list[int] | None:
    """:func:`count_input_tokens` for each prompt row of a batch (padding excluded)."""
    mask = call.attention_mask
    if mask is not None:
        return [int(sum(row)) for row in mask.tolist()]
    input_ids = call.input_ids
    if input_ids is None:
        return None
    rows: list[list[int]] = input_ids.tolist()
    if isinstance(pad_token_id, int):
        return [sum(1 for token in row if token != pad_token_id) for row in rows]
    return [len(row) for row in rows]


def _first_eos(row: list[int], eos: frozenset[int], single: int | None) -> int | None:
    """Length up to and including the first end-of-sequence token, or None."""
    if single is not None:
        try:
            return row.index(single) + 1
        except ValueError:
            return None
    for index, token in enumerate(row):
        if token in eos:
            return index + 1
    return None
