"""How every model of a replay answers: one ``GenerationSettings``, given whole or field by field, checked once."""

from __future__ import annotations

from typing import get_type_hints

import pytest

from loratrace.errors import ConfigurationError
from loratrace.replay import GenerationSettings, run_replay
from loratrace.replay.engines import GenerationChanges


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"max_new_tokens": 0}, r"max_new_tokens \(--max-new-tokens\) must be at least 1, got 0", id="no-tokens"
        ),
        pytest.param(
            {"max_model_len": 0}, r"max_model_len \(--max-model-len\) must be at least 1, got 0", id="no-room"
        ),
        pytest.param(
            {"temperature": -0.5}, r"temperature \(--temperature\) must be 0 or more, got -0.5", id="negative"
        ),
    ],
)
def test_settings_no_engine_can_run_with_are_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GenerationSettings(**fields)  # type: ignore[arg-type]


def test_settings_are_given_by_name_only() -> None:
    with pytest.raises(TypeError, match="positional"):
        GenerationSettings(8)  # type: ignore[misc]


def test_generation_changes_name_every_setting_with_its_type() -> None:
    assert get_type_hints(GenerationChanges) == get_type_hints(GenerationSettings)


def test_run_replay_applies_changes_to_the_settings_given_and_checks_them(tmp_path) -> None:
    # both refused before the dataset is read (it does not exist) or an engine is opened
    replay = {"base": str(tmp_path / "base"), "adapters": {}, "store": tmp_path / "store"}
    with pytest.raises(ConfigurationError, match=r"temperature \(--temperature\) must be 0 or more, got -1"):
        run_replay(tmp_path / "golden.jsonl", generation=GenerationSettings(max_new_tokens=8), temperature=-1, **replay)
    with pytest.raises(TypeError, match="'max_tokens'"):
        run_replay(tmp_path / "golden.jsonl", max_tokens=8, **replay)  # type: ignore[call-arg]
