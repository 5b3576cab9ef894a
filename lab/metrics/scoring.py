"""Per-answer scores: pure, deterministic functions of a prediction, its gold answers and its passages.

Normalisation lower-cases, drops punctuation, articles and extra whitespace (so "I don't know." and
"i dont know" are the same, and "3,600 Nm" matches "3600 nm"). A gold answer counts as present when its
normalised words appear as a contiguous run in the normalised prediction. No model, no disk, no randomness.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

CORRECT, WRONG, SKIPPED, IDK, HALLUCINATION = "correct", "wrong", "skipped", "idk", "hallucination"
CATEGORIES = (CORRECT, WRONG, SKIPPED, IDK, HALLUCINATION)
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2013\u2014]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Generic English ways of declining to answer (normalised form). Matched as contiguous word runs.
ABSTAIN_PHRASES = (
    "i dont know",
    "i do not know",
    "i cannot answer",
    "i cant answer",
    "unable to answer",
    "no information",
    "not enough information",
)
STOPWORDS = frozenset(
    "a an the and or of to in on at for from by with is are was were be been it its this that these those as "
    "i you he she we they what which who when where how do does did not no yes can could should would will".split()
)


def normalize(text: str) -> str:
    """Lower-case, drop punctuation (apostrophes, thousands separators), articles and repeated whitespace."""
    text = _PUNCT.sub("", str(text or "").lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def contains(prediction: str, gold: str) -> bool:
    """True when the normalised gold answer appears as whole words inside the normalised prediction."""
    g = normalize(gold)
    return bool(g) and f" {g} " in f" {normalize(prediction)} "


def is_abstention(prediction: str) -> bool:
    """True for "I don't know" and a few generic equivalents, in any case and punctuation."""
    return any(contains(prediction, phrase) for phrase in ABSTAIN_PHRASES)


def golds(answer: str, aliases: Iterable[str] | None = None) -> list[str]:
    return [g for g in [answer, *(aliases or [])] if normalize(g)]


def category(prediction: str, answer: str, aliases: Iterable[str] | None, answerable: bool) -> str:
    """correct / wrong / skipped for answerable questions, idk / hallucination for unanswerable ones."""
    if not answerable:
        return IDK if is_abstention(prediction) else HALLUCINATION
    if any(contains(prediction, g) for g in golds(answer, aliases)):
        return CORRECT
    return SKIPPED if is_abstention(prediction) else WRONG


def exact_match(prediction: str, references: Iterable[str]) -> float:
    pred = normalize(prediction)
    return float(any(pred == normalize(r) for r in references))


def _f1(pred: list[str], ref: list[str]) -> float:
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return float(pred == ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Iterable[str]) -> float:
    """SQuAD-style token F1 against the best-matching reference."""
    return max((_f1(tokens(prediction), tokens(r)) for r in references), default=0.0)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, references: Iterable[str]) -> float:
    """ROUGE-L F-measure (longest common token subsequence) against the best reference; per example."""
    best = 0.0
    pred = tokens(prediction)
    for ref in references:
        r = tokens(ref)
        lcs = _lcs(pred, r)
        if lcs:
            p, rec = lcs / len(pred), lcs / len(r)
            best = max(best, 2 * p * rec / (p + rec))
    return best


def groundedness(prediction: str, passages: Iterable[str]) -> float | None:
    """Share of the answer's content words found in its passages; None for abstentions or no passages."""
    texts = list(passages)
    if not texts or is_abstention(prediction):
        return None
    words = [w for w in tokens(prediction) if w not in STOPWORDS]
    if not words:
        return None
    found = set(tokens(" ".join(texts)))
    return sum(w in found for w in words) / len(words)


def _doc_key(source: str | None) -> str:
    return re.split(r"[\\/]", str(source or "").strip())[-1].lower()


def retrieval_rank(gold_source: str | None, sources: Iterable[str | None]) -> int | None:
    """1-based rank of the gold document among deduplicated retrieved sources; 0 = missed; None = unknown."""
    if not gold_source:
        return None
    seen: list[str] = []
    for s in sources:
        key = _doc_key(s)
        if key and key not in seen:
            seen.append(key)
    gold = _doc_key(gold_source)
    return seen.index(gold) + 1 if gold in seen else 0
