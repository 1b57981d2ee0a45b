"""Groundedness as lexical support of each answer sentence in the supplied context, and the unsupported-claim rate.

**A heuristic, not a fact check.** The answer is split into sentences; a sentence is *supported* when at least
``threshold`` (default 0.6) of its content words (Unicode word tokens of three or more letters or any digits, minus
common English function words, case-folded) occur in the context. ``groundedness`` is the share of supported
sentences; ``unsupported_claim_rate`` is one minus it, a hallucination proxy.

Known failure modes:

- paraphrase and synonyms count as unsupported (the context says "automobile", the answer "car");
- copying context words in a false combination counts as supported ("Paris is the capital of Germany" against a
  context naming both);
- negation is invisible ("is not" vs "is");
- languages without spaces between words (Chinese, Japanese) are tokenised by runs of letters, so support is coarse;
- the stop-word list is English; in other languages function words count as content and lower support.

An answer with no content words makes no claim: ``groundedness`` 1.0, label ``no_claims``.
"""

from __future__ import annotations

import re
import unicodedata

from loratrace.evaluators.protocol import EvaluationResult

GROUNDEDNESS = "groundedness"
UNSUPPORTED_CLAIM_RATE = "unsupported_claim_rate"
DEFAULT_THRESHOLD = 0.6
DEFAULT_PASS_SHARE = 0.8
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORD = re.compile(r"\w+")
_STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "had",
        "her",
        "was",
        "one",
        "our",
        "out",
        "has",
        "his",
        "how",
        "its",
        "may",
        "new",
        "now",
        "see",
        "two",
        "who",
        "did",
        "get",
        "him",
        "let",
        "put",
        "say",
        "she",
        "too",
        "use",
        "that",
        "with",
        "have",
        "this",
        "will",
        "your",
        "from",
        "they",
        "know",
        "want",
        "been",
        "good",
        "much",
        "some",
        "time",
        "very",
        "when",
        "come",
        "here",
        "just",
        "like",
        "long",
        "make",
        "many",
        "more",
        "only",
        "over",
        "such",
        "take",
        "than",
        "them",
        "well",
        "were",
        "what",
        "which",
        "their",
        "there",
        "these",
        "those",
        "would",
        "could",
        "should",
        "into",
        "about",
        "also",
        "then",
        "because",
        "does",
        "each",
        "most",
        "other",
        "after",
        "before",
        "being",
        "both",
        "where",
        "while",
        "yes",
    ]
)


def _content_words(text: str) -> set[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return {word for word in _WORD.findall(folded) if (len(word) >= 3 or word.isdigit()) and word not in _STOP_WORDS}


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def sentence_support(response: str, context: str, *, threshold: float = DEFAULT_THRESHOLD) -> list[tuple[str, bool]]:
    """(sentence, supported) for every answer sentence that has content words."""
    known = _content_words(context)
    verdicts = []
    for sentence in sentences(response):
        words = _content_words(sentence)
        if words:
            verdicts.append((sentence, len(words & known) / len(words) >= threshold))
    return verdicts


def evaluate_groundedness(
    response: str,
    context: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    pass_share: float = DEFAULT_PASS_SHARE,
) -> tuple[EvaluationResult, EvaluationResult]:
    """``groundedness`` (passed when at least ``pass_share`` of the sentences are supported) and
    ``unsupported_claim_rate`` (passed when at most ``1 - pass_share`` are unsupported)."""
    verdicts = sentence_support(response, context, threshold=threshold)
    if not verdicts:
        return (
            EvaluationResult(GROUNDEDNESS, score=1.0, label="no_claims", passed=True),
            EvaluationResult(UNSUPPORTED_CLAIM_RATE, score=0.0, label="no_claims", passed=True),
        )
    unsupported = [sentence for sentence, supported in verdicts if not supported]
    share = 1.0 - len(unsupported) / len(verdicts)
    passed = share >= pass_share
    explanation = None
    if unsupported:
        explanation = f"{len(unsupported)} of {len(verdicts)} sentences unsupported, first: {unsupported[0][:120]!r}"
    label = "grounded" if passed else "ungrounded"
    return (
        EvaluationResult(GROUNDEDNESS, score=share, label=label, passed=passed, explanation=explanation),
        EvaluationResult(
            UNSUPPORTED_CLAIM_RATE, score=1.0 - share, label=label, passed=passed, explanation=explanation
        ),
    )
