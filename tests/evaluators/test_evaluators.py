"""The built-in evaluators and the external-evaluator protocol, on hand-made answers (edge cases included)."""

from __future__ import annotations

import threading

import pytest

from loratrace.evaluators.groundedness import evaluate_groundedness, sentence_support
from loratrace.evaluators.json_schema import SchemaError, compile_schema, evaluate_json_schema
from loratrace.evaluators.limits import check_limits, evaluate_limits
from loratrace.evaluators.match import evaluate_match, normalise
from loratrace.evaluators.protocol import ERROR_LABEL, EvaluationResult, load_evaluator, run_external
from loratrace.evaluators.refusal import evaluate_refusal
from loratrace.evaluators.tools import compile_tools, evaluate_tool_arguments

NESTED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["customer", "items"],
    "properties": {
        "customer": {
            "type": "object",
            "required": ["name", "address"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "address": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}},
            },
        },
        "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}},
    },
    "$defs": {"item": {"type": "object", "required": ["sku", "qty"], "properties": {"qty": {"type": "integer"}}}},
}


# --- JSON Schema ------------------------------------------------------------------------------------------------
def test_nested_schema_valid_answer_passes():
    answer = '{"customer": {"name": "Zoë", "address": {"city": "Zürich"}}, "items": [{"sku": "a", "qty": 2}]}'
    result = evaluate_json_schema(answer, compile_schema(NESTED))
    assert (result.passed, result.label, result.score) == (True, "valid", 1.0)


def test_nested_schema_error_names_the_deep_path():
    answer = '{"customer": {"name": "Zoë", "address": {"city": "Zürich"}}, "items": [{"sku": "a", "qty": "two"}]}'
    result = evaluate_json_schema(answer, compile_schema(NESTED))
    assert (result.passed, result.label) == (False, "invalid")
    assert result.explanation.startswith("items/0/qty:")


def test_missing_nested_field_through_a_ref():
    result = evaluate_json_schema(
        '{"customer": {"name": "x", "address": {}}, "items": [{"sku": "a", "qty": 1}]}', compile_schema(NESTED)
    )
    assert result.passed is False
    assert "customer/address" in result.explanation
    assert "'city' is a required property" in result.explanation


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        pytest.param("", "not_json", id="empty"),
        pytest.param("   \n", "not_json", id="whitespace"),
        pytest.param('Sure! {"a": 1}', "not_json", id="prose-before-json"),
        pytest.param("[1, 2]", "invalid", id="wrong-type"),
    ],
)
def test_answers_that_are_not_valid(answer, label):
    result = evaluate_json_schema(answer, compile_schema({"type": "object"}))
    assert (result.passed, result.label) == (False, label)


def test_a_code_fence_around_the_json_is_accepted():
    result = evaluate_json_schema('```json\n{"plan": "pro"}\n```', compile_schema({"type": "object"}))
    assert result.passed is True


def test_unicode_strings_are_validated_by_code_points():
    validator = compile_schema({"type": "string", "maxLength": 3})
    assert evaluate_json_schema('"日本語"', validator).passed is True
    assert evaluate_json_schema('"日本語です"', validator).passed is False


@pytest.mark.parametrize(
    "draft",
    [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
    ],
)
def test_supported_drafts(draft):
    validator = compile_schema({"$schema": draft, "type": "integer"})
    assert evaluate_json_schema("3", validator).passed is True
    assert evaluate_json_schema("3.5", validator).passed is False


def test_draft_semantics_follow_the_declared_draft():
    # exclusiveMaximum is a boolean modifier in draft 4 and a number from draft 6 on
    draft4 = compile_schema(
        {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": True}
    )
    assert evaluate_json_schema("5", draft4).passed is False
    assert evaluate_json_schema("4", draft4).passed is True


@pytest.mark.parametrize(
    "draft", ["http://json-schema.org/draft-02/schema#", "https://example.com/my-own-draft", "draft-2020-12"]
)
def test_unsupported_drafts_are_a_clear_error(draft):
    with pytest.raises(SchemaError, match=r"unsupported JSON Schema draft .*use one of: .*draft-04"):
        compile_schema({"$schema": draft, "type": "object"})


def test_an_invalid_schema_is_a_clear_error():
    with pytest.raises(SchemaError, match=r"invalid JSON Schema at properties/n/type"):
        compile_schema({"type": "object", "properties": {"n": {"type": "integr"}}})
    with pytest.raises(SchemaError, match="is an object"):
        compile_schema(["type", "object"])


# --- tool arguments ---------------------------------------------------------------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "reset_password",
            "parameters": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string", "format": "email"}},
                "additionalProperties": False,
            },
        },
    },
    {
        "name": "lookup_order",
        "parameters": {
            "type": "object",
            "required": ["order"],
            "properties": {"order": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}},
        },
    },
]


def test_valid_tool_call_with_arguments_as_a_json_string():
    validators = compile_tools(TOOLS)
    result = evaluate_tool_arguments(
        '{"name": "reset_password", "arguments": "{\\"email\\": \\"ü@x.io\\"}"}', validators
    )
    assert (result.passed, result.score) == (True, 1.0)


def test_tool_calls_scored_by_the_share_of_valid_calls():
    validators = compile_tools(TOOLS)
    answer = (
        '[{"name": "lookup_order", "arguments": {"order": {"id": "7"}}}, '
        '{"name": "reset_password", "arguments": {"email": "a@b.c"}}]'
    )
    result = evaluate_tool_arguments(answer, validators)
    assert (result.passed, result.score, result.label) == (False, 0.5, "invalid")
    assert result.explanation.startswith("lookup_order: order/id:")


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        pytest.param('{"name": "drop_tables", "arguments": {}}', "unknown tool 'drop_tables'", id="unknown-tool"),
        pytest.param(
            '{"name": "reset_password", "arguments": {"email": "a", "x": 1}}',
            "Additional properties",
            id="extra-argument",
        ),
        pytest.param('{"name": "reset_password", "arguments": "{not json"}', "arguments are not JSON", id="bad-args"),
        pytest.param("", "not JSON", id="empty"),
        pytest.param("[]", "no tool call", id="no-call"),
    ],
)
def test_invalid_tool_calls(answer, needle):
    result = evaluate_tool_arguments(answer, compile_tools(TOOLS))
    assert result.passed is False
    assert needle in result.explanation


def test_malformed_tool_declarations():
    with pytest.raises(SchemaError, match=r"tools\[0\] has no name"):
        compile_tools([{"parameters": {}}])
    with pytest.raises(SchemaError, match=r"tools\[0\] \(t\) parameters: unsupported JSON Schema draft"):
        compile_tools([{"name": "t", "parameters": {"$schema": "http://json-schema.org/draft-01/schema#"}}])


# --- refusal ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        "As an AI language model, I",
        "I’m afraid I can’t do that.",
        "I must decline to answer.",
    ],
)
def test_refusals_are_detected(answer):
    result = evaluate_refusal(answer)
    assert (result.passed, result.label) == (False, "refused")


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "Paris is the capital of France.",
        "I can help with that: the invoice is due in 30 days.",
        "Désolé? Non: voilà la réponse.",
    ],
)
def test_answers_are_not_refusals(answer):
    assert evaluate_refusal(answer).label == "answered"


# --- expected-answer match ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected", "mode", "passed"),
    [
        pytest.param("  Paris\n", "Paris", "exact", True, id="exact-trims"),
        pytest.param("paris", "Paris", "exact", False, id="exact-is-case-sensitive"),
        pytest.param("PARIS!", "paris", "normalised", True, id="normalised-case-punctuation"),
        pytest.param("Ｐａｒｉｓ", "paris", "normalised", True, id="normalised-fullwidth-nfkc"),
        pytest.param("STRASSE", "straße", "normalised", True, id="normalised-casefold"),
        pytest.param("The capital is Paris.", "paris", "contains", True, id="contains"),
        pytest.param("Parisian food", "paris", "contains", False, id="contains-word-boundary"),
        pytest.param("", "paris", "contains", False, id="empty-answer"),
        pytest.param("", "", "exact", True, id="empty-expected-empty-answer"),
        pytest.param("order #123 shipped", r"#\d+", "regex", True, id="regex"),
        pytest.param("日本の首都は東京です", "東京", "regex", True, id="regex-unicode"),
    ],
)
def test_match_modes(answer, expected, mode, passed):
    assert evaluate_match(answer, expected, mode).passed is passed


def test_any_of_several_expected_answers():
    assert evaluate_match("due in 30 days", ["thirty days", "30 days"], "contains").passed is True
    result = evaluate_match("soon", ["thirty days", "30 days"], "contains")
    assert result.explanation == "no contains match for 'thirty days' (or 1 other)"


def test_normalise_collapses_whitespace_and_symbols():
    assert normalise("  Hello,\tWORLD!! ©  ") == "hello world"


# --- groundedness -------------------------------------------------------------------------------------------------
CONTEXT = "Invoices are due within thirty days of the billing date. Late invoices incur a two percent fee."


def test_supported_and_unsupported_sentences():
    verdicts = sentence_support("Invoices are due within thirty days. The moon is made of cheese.", CONTEXT)
    assert verdicts == [("Invoices are due within thirty days.", True), ("The moon is made of cheese.", False)]
    grounded, unsupported = evaluate_groundedness(
        "Invoices are due within thirty days. The moon is made of cheese.", CONTEXT
    )
    assert (grounded.score, grounded.passed, unsupported.score) == (0.5, False, 0.5)
    assert "1 of 2 sentences unsupported" in grounded.explanation


def test_fully_grounded_answer():
    grounded, unsupported = evaluate_groundedness("Late invoices incur a two percent fee.", CONTEXT)
    assert (grounded.score, grounded.passed, unsupported.score, unsupported.passed) == (1.0, True, 0.0, True)


def test_empty_answer_makes_no_claims():
    grounded, unsupported = evaluate_groundedness("", CONTEXT)
    assert (grounded.label, grounded.score, unsupported.score) == ("no_claims", 1.0, 0.0)


def test_unicode_context_and_answer():
    context = "Die Rechnung ist innerhalb von dreißig Tagen fällig."
    grounded, _ = evaluate_groundedness("Die Rechnung ist in dreißig Tagen fällig.", context)
    assert grounded.passed is True
    grounded, _ = evaluate_groundedness("Das Konto wurde gelöscht.", context)
    assert grounded.passed is False


def test_known_failure_mode_negation_is_invisible():
    # documented: copying the context's words with a negation still counts as supported
    grounded, _ = evaluate_groundedness("Invoices are not due within thirty days.", CONTEXT)
    assert grounded.passed is True


# --- limits -----------------------------------------------------------------------------------------------------
def test_limits_count_code_points_words_and_lines():
    assert evaluate_limits("日本語", {"max_chars": 3}).passed is True
    result = evaluate_limits("one two three\nfour", {"max_words": 3, "max_lines": 1, "min_chars": 1})
    assert result.passed is False
    assert result.explanation == "4 words > max_words 3; 2 lines > max_lines 1"


def test_limits_format_and_forbid():
    assert evaluate_limits("Yes.", {"format": "^[A-Z]", "forbid": "(?i)lorem"}).passed is True
    assert evaluate_limits("lorem ipsum", {"format": "^[A-Z]"}).passed is False
    assert evaluate_limits("", {"min_chars": 1}).explanation == "0 chars < min_chars 1"


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        pytest.param({"max_char": 3}, "unknown keys", id="typo"),
        pytest.param({"max_chars": -1}, "non-negative integer", id="negative"),
        pytest.param({"max_chars": True}, "non-negative integer", id="bool"),
        pytest.param({"format": "("}, "regular expression", id="bad-regex"),
        pytest.param([1], "must be an object", id="not-object"),
    ],
)
def test_malformed_limits(limits, message):
    with pytest.raises(ValueError, match=message):
        check_limits(limits)


# --- external evaluators ----------------------------------------------------------------------------------------
class Politeness:
    name = "politeness"

    def evaluate(self, *, response, context, expected):
        return {"score": 1.0 if "please" in response else 0.0, "passed": "please" in response}


def test_object_evaluator():
    result = run_external(Politeness(), response="please wait", context=None, expected=None, timeout_s=5)
    assert result == EvaluationResult("politeness", score=1.0, passed=True)


def test_callable_evaluator_returning_bool_and_number():
    def short(*, response, context, expected):
        return len(response) < 5

    def length(*, response, context, expected):
        return len(response)

    assert run_external(short, response="hi", context=None, expected=None, timeout_s=5).passed is True
    assert run_external(length, response="hi", context=None, expected=None, timeout_s=5).score == 2.0


def test_raising_evaluator_is_an_evaluation_error():
    def broken(*, response, context, expected):
        raise RuntimeError("judge backend is down")

    result = run_external(broken, response="x", context=None, expected=None, timeout_s=5)
    assert (result.name, result.label, result.passed) == ("broken", ERROR_LABEL, None)
    assert result.explanation == "evaluator raised RuntimeError: judge backend is down"


def test_hanging_evaluator_times_out():
    release = threading.Event()

    def hangs(*, response, context, expected):
        release.wait(60)
        return True

    try:
        result = run_external(hangs, response="x", context=None, expected=None, timeout_s=0.2)
    finally:
        release.set()
    assert (result.label, result.explanation) == (ERROR_LABEL, "evaluator timed out after 0.2 s")


def test_evaluator_returning_nonsense_is_an_evaluation_error():
    def odd(*, response, context, expected):
        return {"verdict": "good"}

    result = run_external(odd, response="x", context=None, expected=None, timeout_s=5)
    assert result.label == ERROR_LABEL
    assert "unknown keys ['verdict']" in result.explanation


def test_evaluator_building_a_result_of_the_wrong_type_is_an_evaluation_error():
    def judge(*, response, context, expected):
        return EvaluationResult("judge", score="high")  # a judge's text verdict where a number belongs

    result = run_external(judge, response="x", context=None, expected=None, timeout_s=5)
    assert (result.name, result.label) == ("judge", ERROR_LABEL)
    assert result.explanation == "evaluator raised TypeError: EvaluationResult(score=...) takes a number, got 'high'"


def test_a_returned_result_is_named_for_its_evaluator():
    class Judge:
        name = "politeness"

        def evaluate(self, *, response, context, expected):
            return EvaluationResult("draft-name", score=0.5, explanation="terse")

    result = run_external(Judge(), response="x", context=None, expected=None, timeout_s=5)
    assert result == EvaluationResult("politeness", score=0.5, explanation="terse")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: EvaluationResult("n", 0.5), "positional", id="score-by-position"),
        pytest.param(lambda: EvaluationResult("n", passed="yes"), "passed=...", id="passed-not-bool"),
        pytest.param(lambda: EvaluationResult("", score=1.0), "non-empty string", id="no-name"),
    ],
)
def test_evaluation_result_takes_its_values_by_name_and_checks_them(build, message):
    with pytest.raises(TypeError, match=message):
        build()


def test_load_evaluator_references():
    assert callable(load_evaluator("json:dumps"))
    with pytest.raises(ValueError, match="module:attr"):
        load_evaluator("json.dumps")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_17'"):
        load_evaluator("no_such_module_17:x")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        load_evaluator("json:nope")
    with pytest.raises(ValueError, match="neither callable"):
        load_evaluator("json:__doc__")
