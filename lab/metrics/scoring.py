"""Per-answer scores: pure, deterministic functions of a prediction, its gold answers and its passages.

Normalisation lower-cases, drops punctuation, articles and extra whitespace (so "I don't know." and
"i dont know" are the same, and "3,600 Nm" matches "3600 nm") but keeps a decimal point and a leading minus
sign ("1.2" is not "12", "-25" is not "25"). A gold answer counts as present when its normalised words appear
as a contiguous run in the normalised prediction, unless the answer gives the gold number with a different
unit, hedges it with "or" against another value of the same kind, or names another such value first.
No model, no disk, no randomness.
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


_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_MINUS = re.compile(r"(?<![\w.\-])-(?=\d)")
_KEEP_POINT, _KEEP_MINUS = "\u2024", "\u2212"  # placeholders that survive punctuation removal


def normalize(text: str) -> str:
    """Lower-case, drop punctuation (apostrophes, thousands separators), articles and repeated whitespace;
    a decimal point between digits and a minus sign before a number are kept."""
    text = _MINUS.sub(_KEEP_MINUS, _DECIMAL_POINT.sub(_KEEP_POINT, str(text or "").lower()))
    text = _PUNCT.sub("", text).replace(_KEEP_POINT, ".").replace(_KEEP_MINUS, "-")
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
    forms = golds(answer, aliases)
    if any(contains(prediction, g) for g in forms) and not overruled(prediction, forms):
        return CORRECT
    return SKIPPED if is_abstention(prediction) else WRONG


# Generic units of measure (lower-case, singular), used to tell "35 °C" from "35 %": a number followed by one of
# these carries that unit. Words that double as ordinary English ("in", "a", "t") are left out on purpose.
UNITS = frozenset(
    "% percent per cent ° °c °f °k c f degree deg kelvin celsiu fahrenheit "
    "mm cm m km metre meter millimetre millimeter centimetre centimeter kilometre kilometer ft feet foot mile yard "
    "m/s km/h kmh mph knot rpm hz khz mhz ghz "
    "mg g kg tonne gram kilogram milligram lb pound oz ml l litre liter millilitre milliliter gal gallon "
    "n nm knm newton pa kpa mpa bar mbar psi "
    "v kv mv volt kilovolt ma amp ampere w kw mw gw watt kilowatt megawatt wh kwh mwh va kva mva "
    "ohm mohm kohm milliohm megohm kiloohm ω "
    "s sec second ms min minute h hr hour day week month year yr db dba lux j kj mj cal kcal".split()
)
_NUMBER = r"-?\d+(?:\.\d+)?"
_QUANTITY = re.compile(rf"(?<![\w.])({_NUMBER})(?:\s*(%|°(?:\s?[cfk](?![a-z]))?|[a-zµω][a-zµω/]*))?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _unit(word: str) -> str:
    """A unit word in one spelling: lower-case, no inner space, singular ("Litres" -> "litre", "° C" -> "°c")."""
    word = word.lower().replace(" ", "")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")) else word


def quantities(text: str) -> list[tuple[float, str | None]]:
    """Every number in `text` with the unit word right after it, if any: "3,600 Nm" -> (3600.0, "nm")."""
    raw = _THOUSANDS.sub("", str(text or "").lower())
    return [(float(n), _unit(u) if u else None) for n, u in _QUANTITY.findall(raw)]


def _gold_units(forms: Iterable[str]) -> dict[float, set[str]]:
    """For each gold form that starts with a number: the units it may carry ("35 %", "35 percent" -> {%, percent})."""
    units: dict[float, set[str]] = {}
    for form in forms:
        found = _QUANTITY.match(_THOUSANDS.sub("", form.strip().lower()))
        if found:
            unit = found.group(2)
            units.setdefault(float(found.group(1)), set()).update([_unit(unit)] if unit else [])
    return units


def wrong_unit(prediction: str, forms: Iterable[str]) -> bool:
    """True when every time the prediction gives a gold number it puts a different known unit after it
    ("35 °C" for "35 %")."""
    units = {n: u for n, u in _gold_units(forms).items() if u}
    said = [(n, u) for n, u in quantities(prediction) if n in units]
    return bool(said) and all(u is not None and u in UNITS and u not in units[n] for n, u in said)


def _templates(forms: Iterable[str]) -> list[tuple[re.Pattern, float]]:
    """For each normalised gold form with one number and some words around it, a pattern matching the same
    words around any number ("level 2" -> "level N"), with the gold's number."""
    out = []
    for form in forms:
        g = normalize(form)
        nums = list(re.finditer(rf"(?<![\w.]){_NUMBER}(?![\d.])", g))
        if len(nums) == 1 and g != nums[0].group(0):
            m = nums[0]
            before, after = re.escape(g[: m.start()]), re.escape(g[m.end() :])
            out.append((re.compile(rf"(?<!\S){before}({_NUMBER}){after}(?!\S)"), float(m.group(0))))
    return out


def _candidates(prediction: str, forms: Iterable[str]) -> list[tuple[int, int, bool]]:
    """Values of the gold's kind the normalised prediction names: (start, end, is the gold), in order; a bare
    number joined by "or" to one of them ("24 or 4 hours", "level 2 or 3") counts as one too."""
    pred, found = normalize(prediction), set()
    for pattern, gold in _templates(forms):
        for m in pattern.finditer(pred):
            found.add((m.start(), m.end(), float(m.group(1)) == gold))
            alt = re.search(rf"(?<!\S)({_NUMBER}) or\s*$", pred[: m.start()])
            if alt:
                found.add((alt.start(), alt.end(1), float(alt.group(1)) == gold))
            alt = re.match(rf"\s*or ({_NUMBER})(?!\S)", pred[m.end() :])
            if alt:
                found.add((m.end() + alt.start(1), m.end() + alt.end(1), float(alt.group(1)) == gold))
    return sorted(found)


def hedged(prediction: str, forms: Iterable[str]) -> bool:
    """True when the prediction names another value of the gold's kind before the gold one, or joins the gold
    value and another by "or" ("24 hours or 4 hours")."""
    cands = _candidates(prediction, forms)
    if not any(not is_gold for _, _, is_gold in cands):
        return False
    if not cands[0][2]:
        return True
    pred = normalize(prediction)
    pairs = zip(cands, cands[1:], strict=False)
    return any(a[2] != b[2] and pred[a[1] : b[0]].strip() == "or" for a, b in pairs)


def overruled(prediction: str, forms: Iterable[str]) -> bool:
    """True when a prediction that contains a gold form still does not give the gold value: a different unit,
    or several candidate values of the gold's kind (see `wrong_unit` and `hedged`)."""
    forms = list(forms)
    return wrong_unit(prediction, forms) or hedged(prediction, forms)


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
