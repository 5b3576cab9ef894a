"""Preference pairs for a DPO run: read and check a pairs file, turn the Arena's blind votes into pairs, and keep
the pairs a run trains on in its folder (RUN_DIR/prefs.jsonl).

A pair is `{"prompt", "chosen", "rejected"}`: strings (the question and two answers), or lists of chat messages as
TRL writes them (the prompt's messages, then the chosen and the rejected assistant turn). Both are normalised to
TRL's conversational form. Errors name the line and what to do. Reads the `votes` table through lab.db only; no
models, no gradio.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lab import db
from lab.errors import LabError

RUN_FILE = "prefs.jsonl"
VOTES = "votes"  # TrainConfig.prefs value meaning "the Arena's blind votes, read when the run starts"
KEYS = ("prompt", "chosen", "rejected")
ROLES = ("system", "user", "assistant")
LEFT_OUT = ("tie", "both_bad", "identical", "empty", "not_blind")


class PrefsError(LabError):
    """A preference-pairs file or the votes cannot be trained on; the message names the line or the cause."""


def _messages(value, key: str, line: int) -> list[dict]:
    """`value` as chat messages: a string is one message (user for the prompt, assistant for an answer)."""
    if isinstance(value, str):
        if not value.strip():
            raise PrefsError(f"line {line}: {key!r} is empty; give the text or leave the pair out")
        return [{"role": "user" if key == "prompt" else "assistant", "content": value}]
    if not isinstance(value, list) or not value:
        raise PrefsError(f"line {line}: {key!r} must be a string or a non-empty list of messages, got {value!r:.80}")
    out = []
    for msg in value:
        ok = isinstance(msg, dict) and msg.get("role") in ROLES and isinstance(msg.get("content"), str)
        if not ok or not msg["content"].strip():
            raise PrefsError(f"line {line}: {key!r} holds {msg!r:.80}; each message needs a role "
                             f"({', '.join(ROLES)}) and a non-empty text content")  # fmt: skip
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


def check_pair(record, line: int) -> dict:
    """One pair in TRL's conversational form; a PrefsError naming the line when it is not a usable pair."""
    if not isinstance(record, dict):
        raise PrefsError(f"line {line}: expected a JSON object with prompt, chosen and rejected, got {record!r:.80}")
    missing = [k for k in KEYS if k not in record]
    if missing:
        raise PrefsError(f"line {line}: missing {', '.join(missing)}; a pair is {{prompt, chosen, rejected}}")
    pair = {k: _messages(record[k], k, line) for k in KEYS}
    for key in ("chosen", "rejected"):
        if pair[key][-1]["role"] != "assistant":
            raise PrefsError(f"line {line}: {key!r} must end with an assistant message (the answer)")
    if pair["prompt"][-1]["role"] != "user":
        raise PrefsError(f"line {line}: 'prompt' must end with a user message (the question)")
    if pair["chosen"] == pair["rejected"]:
        raise PrefsError(f"line {line}: chosen and rejected are the same answer: no preference to learn; drop it")
    return pair


def read_pairs(path: str | Path) -> list[dict]:
    """Every pair of a JSONL file, checked; the first bad line is a PrefsError naming it."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise PrefsError(
            f"prefs={str(path)!r}: no such file; give a preference-pairs JSONL file ({{prompt, chosen, rejected}} a "
            f"line, as `python -m lab votes export` writes) or {VOTES!r} for the Arena's blind votes"
        )
    pairs = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise PrefsError(f"{path.name} line {n}: not JSON ({exc}); one pair per line") from None
        pairs.append(check_pair(record, n))
    if not pairs:
        raise PrefsError(f"{path.name} holds no preference pairs: export some votes or write pairs first")
    return pairs


def vote_pairs(votes: list[dict], clean=lambda text: text) -> tuple[list[dict], dict[str, int]]:
    """Pairs `{prompt, chosen, rejected, chosen_by, rejected_by}` (strings; the last two name the contestants) from
    vote rows (lab.db's votes table), and the counts of the votes left out: ties, "both bad", identical or empty
    answers, votes that were not blind. `clean(text)` is applied to each answer (the Arena removes its passage
    marks)."""
    pairs, left = [], dict.fromkeys(LEFT_OUT, 0)
    for vote in votes:
        winner = vote["winner"]
        if not vote.get("blind", 1):
            left["not_blind"] += 1
            continue
        if winner not in ("a", "b"):
            left[winner if winner in left else "tie"] += 1
            continue
        win, lose = (vote["answer_a"], vote["answer_b"]) if winner == "a" else (vote["answer_b"], vote["answer_a"])
        win, lose = clean(win or "").strip(), clean(lose or "").strip()
        if not win or not lose or not str(vote["question"] or "").strip():
            left["empty"] += 1
        elif win == lose:
            left["identical"] += 1
        else:
            names = (vote["system_a"], vote["system_b"]) if winner == "a" else (vote["system_b"], vote["system_a"])
            pairs.append({"prompt": vote["question"].strip(), "chosen": win, "rejected": lose,
                          "chosen_by": names[0], "rejected_by": names[1]})  # fmt: skip
    return pairs, left


def stored_votes(db_path: str | Path) -> list[dict]:
    """Every vote, oldest first (blind or not: `vote_pairs` counts the others)."""
    if not Path(db_path).is_file():
        return []
    db.init(db_path)
    return db.rows(db_path, "SELECT * FROM votes ORDER BY id")


def resolve(ws, prefs: str, clean=lambda text: text) -> list[dict]:
    """The checked pairs a DPO run named `prefs` trains on: a file's, or the Arena's blind votes' (VOTES), their
    answers passed through `clean` (as generated by default; the Train tab and the CLI export the votes to a file
    first, through lab.arena.votes, which removes the passage marks)."""
    if not (prefs or "").strip():
        raise PrefsError(
            "prefs is empty: a DPO run needs preference pairs, a JSONL file of {prompt, chosen, rejected} or "
            f"{VOTES!r} (the Arena's blind votes)"
        )
    if prefs.strip() != VOTES:
        return read_pairs(prefs)
    pairs, left = vote_pairs(stored_votes(ws.db_path), clean)
    if not pairs:
        shown = ", ".join(f"{k} {v}" for k, v in left.items() if v) or "no votes yet"
        raise PrefsError(f"the Arena's votes give no preference pairs ({shown}): vote A or B in a few blind battles")
    return [check_pair(p, n) for n, p in enumerate(pairs, 1)]


def pairs_hash(pairs: list[dict]) -> str:
    """sha256 of the pairs (what a run's data hash records)."""
    text = "\n".join(json.dumps(p, sort_keys=True, ensure_ascii=False) for p in pairs)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_run_file(run_dir: str | Path, pairs: list[dict]) -> Path:
    """The pairs the run trains on, kept in its folder (the child reads only this file)."""
    path = Path(run_dir) / RUN_FILE
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    return path


def pair_lengths(tokenizer, pairs: list[dict]) -> list[int]:
    """Chat-template token counts of prompt + the longer answer of each pair (what the estimate sizes)."""
    out = []
    for pair in pairs:
        longer = max(pair["chosen"], pair["rejected"], key=lambda m: len(m[-1]["content"]))
        ids = tokenizer.apply_chat_template(pair["prompt"] + longer, tokenize=True)
        out.append(len(ids["input_ids"] if isinstance(ids, dict) else ids))
    return out
