"""The verdict over many contestants: the best on correct answers and the best on hallucination are each compared
with their runner-up only, and one sentence says what fine-tuning for RAG changed against plain fine-tuning."""

from __future__ import annotations

from fakes import Scripted, eval_items

from lab.arena import evaluation
from lab.arena.verdict import verdict
from lab.config import GenConfig

BLUE = {f"colour {i}?": "It is blue." for i in range(8)}
HALF = {f"colour {i}?": ("blue" if i % 2 else "red") for i in range(8)}
NONE = {f"colour {i}?": "red" for i in range(8)}
MADE_UP = {f"price {i}?": "100 euro" for i in range(4)}


def _result():
    answers = {
        "ft+rag:ragrun:docs": BLUE,  # trained for RAG: right, and abstains on the unanswerable questions
        "ft+rag:plain:docs": HALF | MADE_UP,
        "rag:docs": HALF,
        "ft:plain": NONE | MADE_UP,
    }
    responders = {name: Scripted(name, a) for name, a in answers.items()}
    result = evaluation.run_evaluation(eval_items(), responders, GenConfig(), bootstrap=200)
    result["contestants"] = {
        "ft+rag:ragrun:docs": {"kind": "ft+rag", "index": "docs", "rag_trained": True},
        "ft+rag:plain:docs": {"kind": "ft+rag", "index": "docs", "rag_trained": False},
        "rag:docs": {"kind": "rag", "index": "docs", "rag_trained": False},
        "ft:plain": {"kind": "ft", "index": "", "rag_trained": False},
    }
    return result


def test_best_is_compared_with_the_runner_up_only():
    text = verdict(_result())
    lines = text.splitlines()
    assert "Most correct answers: **ft+rag:ragrun:docs**: 100%" in lines[0]
    assert "**ft+rag:ragrun:docs**" in lines[1] and "**ft:plain**" not in lines[1]  # runner-up is a half-right one
    assert "ft:plain" not in "\n".join(lines[:2])
    hallucination = [line for line in lines if "Fewest hallucinations" in line]
    assert hallucination and "0%" in hallucination[0]


def test_one_sentence_says_what_fine_tuning_for_rag_changed():
    text = verdict(_result())
    change = [line for line in text.splitlines() if "Fine-tuning for RAG" in line]
    assert len(change) == 1
    assert "**ft+rag:ragrun:docs** against plain fine-tuning **ft+rag:plain:docs**" in change[0]
    assert "correct answers +50 points" in change[0] and "hallucinations -100 points" in change[0]
    plain = _result()
    plain.pop("contestants")
    assert "Fine-tuning for RAG" not in verdict(plain)


def test_the_headline_answers_the_question_in_plain_sentences():
    from lab.arena.verdict import headline

    lines = headline(_result()).split("\n\n")
    assert lines[0].startswith("Fine-tune or RAG? **rag:docs** answered 50 points more questions correctly than")
    assert "**ft:plain** (50% against 0%)" in lines[0]
    assert lines[1].startswith("**ft+rag:ragrun:docs** answered the most correctly (100% of 8 answerable")
    assert "50 points ahead of" in lines[1]  # the runner-up is a half-right contestant
    assert (
        lines[2].startswith("**ft+rag:ragrun:docs** made up the fewest answers")
        and "(0% of 4 unanswerable" in lines[2]
    )
    assert lines[3].startswith("Fine-tuning for RAG")
    plain = _result()
    plain.pop("contestants")  # without knowing which contestant is which kind: no approach-level sentences
    assert not any(
        line.startswith(("Fine-tune or RAG?", "Fine-tuning for RAG")) for line in headline(plain).split("\n\n")
    )
    assert headline({"systems": []}) == ""


def test_the_headline_calls_a_tie_a_tie():
    from lab.arena.verdict import headline

    answers = {"rag:a": HALF, "rag:b": HALF}
    result = evaluation.run_evaluation(eval_items(), {n: Scripted(n, a) for n, a in answers.items()}, GenConfig(),
                                       bootstrap=50)  # fmt: skip
    first = headline(result).split("\n\n")[0]
    assert "level with **rag:" in first and "0 points" not in first


def test_the_headline_claims_no_real_difference_on_few_questions_and_says_when_a_run_was_cancelled():
    from lab.arena.verdict import MIN_PAIRED, headline

    result = _result()  # 8 answerable questions: a bootstrap interval that excludes 0 is still too thin
    text = headline(result)
    assert "a real difference" not in text and "too few questions (8) to tell" in text
    result["status"] = "cancelled"
    assert headline(result).endswith("cover only the questions answered before that.")
    assert MIN_PAIRED > 8


def test_a_lone_contestant_gets_its_rates_not_a_contest():
    from lab.arena.verdict import headline

    result = evaluation.run_evaluation(eval_items(), {"ft:plain": Scripted("ft:plain", NONE | MADE_UP)}, GenConfig(),
                                       bootstrap=50)  # fmt: skip
    text = headline(result)
    assert "**ft:plain** answered correctly 0% of 8 answerable questions." in text
    assert "**ft:plain** made up an answer to 100% of 4 unanswerable questions." in text and "most" not in text


def test_findings_render_as_plain_text_or_markdown_and_the_stored_verdict_is_their_markdown():
    from lab.arena.verdict import Finding, findings, render_list, verdict_text

    result = _result()
    found = findings(result)
    assert all(isinstance(f, Finding) and f.kind for f in found)
    assert verdict(result) == render_list(found, markdown=True)  # what results.json keeps, as before
    plain = verdict_text(result)
    assert "**" not in plain and "- Most correct answers: ft+rag:ragrun:docs: 100% (95% CI 100-100%, n=8)." in plain
    best = next(f for f in found if f.kind == "correct_rate")
    assert best.rate.value == 1.0 and best.rate.n == 8 and best.note == "95% CI 100-100%, n=8"
    assert best.markdown == "Most correct answers: **ft+rag:ragrun:docs**: 100% (95% CI 100-100%, n=8)."
    ahead = next(f for f in found if f.kind == "difference")
    assert ahead.diff[3] == 8 and ahead.parts[1::2] == ("ft+rag:ragrun:docs", "ft+rag:plain:docs")
    assert verdict_text({"systems": []}) == "No answers yet: run an evaluation with at least one contestant."


def test_the_ui_list_puts_each_note_on_a_small_line_under_its_sentence():
    from lab.arena.verdict import findings, render_list

    found = findings(_result())
    items = render_list(found, markdown=True, small_notes=True).split("\n- ")
    assert len(items) == len(found)
    for item, f in zip(items, found, strict=True):
        if f.note:
            sentence, note = item.split("\n")
            assert "CI" not in sentence and sentence.rstrip().endswith(".")
            assert note.strip() == f"<small>{f.note}</small>"
        else:
            assert "\n" not in item and "<small>" not in item


def test_the_cli_prints_the_table_and_the_verdict_without_markup(capsys):
    from lab.cli.arena import print_table, print_verdict

    result = _result()
    print_table(result)
    print_verdict(result)
    out = capsys.readouterr().out
    assert "**" not in out and "<small>" not in out
    head, first = out.splitlines()[:2]
    assert head.split()[:3] == ["system", "correct", "wrong"] and "halluc." in head and "EM" in head
    assert first.split()[:2] == ["ft+rag:ragrun:docs", "100%"] and "[100-100]" in first
    assert "- Fine-tuning for RAG (ft+rag:ragrun:docs against plain fine-tuning ft+rag:plain:docs)" in out
