"""``loratrace.request_scopes``: validation and scope behaviour (the batch behaviour is tested on real vLLM in
tests/vllm/test_replay_vllm.py)."""

from __future__ import annotations

import pytest

import loratrace
from loratrace import semconv
from loratrace.errors import ConfigurationError
from loratrace.runtime.release_scope import current_scope
from loratrace.runtime.request_scopes import SERVING_SCOPES


def test_each_scope_inherits_the_enclosing_context_and_names_its_own():
    with loratrace.context(dataset_version="golden-v2", route="billing"):
        scopes = loratrace.request_scopes([{"cohort": "smb", "example_id": "q1"}, {"example_id": 7, "tenant": "t"}])
    with scopes, scopes.request(1) as scope:
        assert current_scope() is scope
        assert scope.attributes == {
            semconv.DATASET_VERSION: "golden-v2",
            semconv.ROUTE_NAME: "billing",
            semconv.EXAMPLE_ID: 7,
            semconv.CONTEXT_PREFIX + "tenant": "t",
        }
    assert current_scope() is None


def test_serving_names_the_scopes_of_the_next_batch_by_position():
    with loratrace.request_scopes([{"example_id": "a"}, {"example_id": "b"}, {"example_id": "c"}]) as scopes:
        with scopes.serving([2, 0]):
            chosen = SERVING_SCOPES.get()
            assert [scope.attributes[semconv.EXAMPLE_ID] for scope in chosen] == ["c", "a"]
        assert SERVING_SCOPES.get() is None


@pytest.mark.parametrize(
    ("contexts", "message"),
    [
        pytest.param({"example_id": "a"}, "takes a list with one mapping", id="a-mapping"),
        pytest.param("abc", "takes a list with one mapping", id="a-string"),
        pytest.param([{"example_id": "a"}, "b"], "entry 1 must be a mapping", id="entry"),
        pytest.param([{"variant": "canary"}], "variant=", id="bad-variant"),
        pytest.param([{"cohort": ["a"]}], "cohort=", id="bad-value"),
    ],
)
def test_bad_contexts_are_clear_errors(contexts, message):
    with pytest.raises(ConfigurationError, match=message):
        loratrace.request_scopes(contexts)


def test_closed_scopes_cannot_be_reused():
    scopes = loratrace.request_scopes([{"example_id": "a"}])
    scopes.close()
    with pytest.raises(ConfigurationError, match=r"request\(\) after close"), scopes.request(0):
        pass
