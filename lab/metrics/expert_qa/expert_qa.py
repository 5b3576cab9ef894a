"""ExpertQA: an `evaluate` metric module, loaded by path with `evaluate.load("lab/metrics/expert_qa/expert_qa.py")`.

Scores short answers to domain questions: answer category (correct / wrong / skipped / idk / hallucination),
normalised exact match, token F1 and ROUGE-L per example, averaged. It wraps the pure functions in
`lab.metrics.scoring` so the CLI, the arena and `evaluate` users get identical numbers. This file is only ever
imported by `evaluate`'s loader (never by `import lab`), which needs the `evaluate.Metric` base class at module
level, hence the module-level imports below (tests/test_architecture.py exempts evaluate module folders by
name); it must not contact the hub.
"""

import datasets
import evaluate

from lab.metrics import scoring

_DESCRIPTION = "Answer categories, exact match, token F1 and ROUGE-L for short answers, after normalisation."
_KWARGS = """
predictions: list of answers. references: list of gold answers. aliases: optional list of lists of accepted
alternatives. answerable: optional list of bools (default all True).
Returns: exact_match, token_f1, rouge_l (means) and the share of each category, plus per-example lists.
"""


class ExpertQA(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, aliases=None, answerable=None):
        n = len(predictions)
        aliases = aliases or [[] for _ in range(n)]
        answerable = answerable if answerable is not None else [True] * n
        cats, em, f1, rl = [], [], [], []
        for pred, ref, al, ok in zip(predictions, references, aliases, answerable, strict=True):
            refs = scoring.golds(ref, al)
            cats.append(scoring.category(pred, ref, al, ok))
            em.append(scoring.exact_match(pred, refs))
            f1.append(scoring.token_f1(pred, refs))
            rl.append(scoring.rouge_l(pred, refs))
        out = {"exact_match": sum(em) / n, "token_f1": sum(f1) / n, "rouge_l": sum(rl) / n} if n else {}
        out |= {f"{c}_rate": cats.count(c) / n for c in scoring.CATEGORIES} if n else {}
        return out | {"categories": cats, "per_example": {"exact_match": em, "token_f1": f1, "rouge_l": rl}}
