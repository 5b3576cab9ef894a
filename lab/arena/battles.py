"""Blind battles: the server issues a battle, records both answers, and accepts exactly one vote for it.

`start_battle` draws two contestants on random sides and stores an issued battle (random id, question, both
ids, settings) in SQLite; `finish_battle` stores both answers once they are complete (or `fail_battle` voids
it). `vote` accepts a vote only for a battle this server issued and finished, once, and copies the question,
ids and answers from the battle row: what the server generated, never what a caller claims. A vote row keeps
everything needed to recompute ratings; only blind votes are rated (see leaderboard). A vote is stored as not
blind when an earlier vote's reveal already showed one of its answers, to the same question, from the same
contestant (`_seen_in`): greedy decoding repeats itself, so a revealed question asked again lets the voter tell
the sides. `votes_csv` exports every vote and `reset_votes` clears votes and issued battles (the teacher
controls). `blind_text` removes the RAG prompt's own marks (citations, source notes, "according to the passages")
from both sides alike, so they do not name the side that read passages; `battle_text` is what a voter sees of an
answer before the vote: `blind_text`, then Markdown made plain text (`plain_text`), the lines joined into one
paragraph, and the paragraph cut at its last full sentence within the same character budget for both sides
(`BLIND_CHARS`), so neither the formatting a reader copied from its passages nor an answer stopped mid-word by the
token limit tells the sides apart. The rules are Markdown's and punctuation's, not any domain's or language's.
No gradio here.
"""

from __future__ import annotations

import csv
import io
import random
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lab import db
from lab.errors import LabError

WINNERS = ("a", "b", "tie", "both_bad")
LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}


_CITATION = re.compile(r"[ \t]*\[\d+(?:\s*[,;\u2013-]\s*\d+)*\]")  # [1], [1, 2], [2-3]
_SOURCE_NOTE = re.compile(r"[ \t]*\(\s*sources?\s*:[^()\n]*\)", re.I)  # (source: 03-lockout.md)
# a citation or source note the token limit cut off at the very end: "[2", "(", "(sour", "(source: 03-lo"
_CUT_MARK = re.compile(
    r"[ \t]*(?:\[[\d,; \t\u2013-]*|\((?:\s*s(?:o(?:u(?:r(?:c(?:es?)?)?)?)?)?(?:\s*:[^()\n]*)?)?)$", re.I
)
_BARE_ITEM = re.compile(r"[ \t]*\d+[.)][ \t]*")  # a line that is only a list number
_FILE_STEM = re.compile(r"\w+(?:[-_]\w+){2,}")  # a file-name stem no sentence would contain
_READ = r"(?:the |these |this |given |provided )*(?:passages?|context|documents?|texts?|sources?)(?:\s+\d+)?"
_LEAD_IN = re.compile(
    rf"^[ \t]*(?:(?:according to|based on|as (?:stated|mentioned|described|shown) in) {_READ}[ \t]*[,:]?[ \t]*"
    rf"|(?:from|in) {_READ}[ \t]*[,:][ \t]*"
    rf"|{_READ} (?:mentions?|says?|states?|indicates?|shows?|explains?|notes?|describes?|reads?)(?: that)?,?[ \t]+)",
    re.I | re.M,
)


def blind_text(text: str, sources: Iterable[str] = ()) -> str:
    """An answer as a blind battle shows it before the vote. The RAG prompt asks for citations like [1]; its
    passages carry "(source: file)" notes; readers open with "According to the passages, ...". Each of these says
    "this side read passages" rather than anything about the answer, so they are removed on both sides alike (the
    reveal shows the answer as generated), also when the token limit cut one off at the end, and so are the file
    names of the answer's own `sources` (a reader echoes them). The patterns are the prompt's vocabulary, not any
    domain's."""
    text = str(text or "")
    out = _SOURCE_NOTE.sub("", _CITATION.sub("", text))
    out = _CUT_MARK.sub("", out.rstrip())
    out = _LEAD_IN.sub("", _source_names(sources).sub("", out))
    out = re.sub(r"(?<=\S)[ \t]{2,}", " ", re.sub(r"[ \t]+([.,;:!?])", r"\1", out))
    lines = [line[:1].upper() + line[1:] for line in _without_emptied_items(text, out)]
    return "\n".join(lines).strip()


def _without_emptied_items(before: str, after: str) -> list[str]:
    """The lines of `after`, less the list numbers whose item was only a mark (the removals keep the line count);
    a line that was a bare number in `before` already is the answer's own and stays."""
    bare = {i for i, line in enumerate(before.splitlines()) if _BARE_ITEM.fullmatch(line)}
    return [line for i, line in enumerate(after.splitlines()) if i in bare or not _BARE_ITEM.fullmatch(line)]


def _source_names(sources: Iterable[str]) -> re.Pattern:
    """The file names of `sources` as whole words, and their stems too where a stem cannot be ordinary text: three or
    more parts joined by "-" or "_" without spaces ("03-lockout-tagout", not "manual", "X-200" or "Safety Manual");
    a pattern that matches nothing when there are none."""
    names = set()
    for source in sources:
        name = Path(str(source or "")).name
        stem = Path(name).stem
        names |= {name, stem} if _FILE_STEM.fullmatch(stem) else {name}
    words = sorted((re.escape(n) for n in names if n), key=len, reverse=True)
    return re.compile(rf"(?<![\w.-])(?:{'|'.join(words)})(?![\w-])" if words else r"(?!)", re.I)


BLIND_CHARS = 600  # what a voter reads of either answer before the vote: the same budget for both sides

# Markdown as plain text: each rule keeps the words and drops the marks (line by line; lines are joined later)
_FENCE = re.compile(r"^[ \t]*(?:```|~~~).*$", re.M)  # a code fence line (its code stays)
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$|^[ \t]*=+[ \t]*$", re.M)  # ---, ***, a setext underline
_HEADER = re.compile(r"^[ \t]*#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.M)
_ITEM = re.compile(
    r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?(?=\S)", re.M
)  # "- ", "2. ", "- [x] "
_TABLE_SEP = re.compile(r"^(?=[^\n]*\|)(?=[^\n]*-)[ \t|:-]+$", re.M)  # |---|:-:|
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.M)
_REF_DEF = re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]+\S+.*$", re.M)  # [1]: https://...
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\](?:\([^)\n]*\)|\[[^\]\n]*\])")  # [text](url), [text][ref]
_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):[^>\s]+)>")
_HTML = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_CODE = re.compile(r"(`+)(.+?)\1")
_EMPHASIS = (
    re.compile(r"(\*\*\*|___)(?=\S)(.+?)(?<=\S)\1"),
    re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"),
    re.compile(r"(\*)(?=[^\s*])(.+?)(?<=[^\s*])\*"),
    re.compile(r"(?<![\w\\])(_)(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)"),
    re.compile(r"(~~)(?=\S)(.+?)(?<=\S)\1"),
)
_STRAY = re.compile(r"(?<!\S)(?:\*{1,3}|_{2,3}|~~)(?=\S)|(?<=\S)(?:\*{1,3}|_{2,3}|~~)(?!\S)")  # a mark the cut left
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_HELD = 0xE000  # an escaped mark waits in the private use area while the marks are removed
_RELEASE = {_HELD + ord(c): c for c in "\\`*_{}[]()#+-.!|>~"}

# sentence ends: . ! ? ... then closing quotes or brackets, then a space or the end; the full-width forms need no space
_TERMINAL = ".!?\u2026\u3002\uff01\uff1f"
_CLOSE = "\"'\u201d\u2019)\\]\u300d\u300f\uff09"
_END = re.compile(rf"[.!?\u2026]+[{_CLOSE}]*(?=\s|$)|[\u3002\uff01\uff1f]+[{_CLOSE}]*")
_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")  # scripts with full-width stops


def plain_text(text: str) -> str:
    """Markdown as plain text, line by line: headers, emphasis, code marks, list markers, quotes, tables, links
    and HTML tags lose their marks and keep their words. A bare number on its own line ("3.") is the answer's, not
    a list marker, and stays."""
    out = _ESCAPE.sub(lambda m: chr(_HELD + ord(m.group(1))), str(text or ""))  # an escaped star is a star, not a mark
    out = _FENCE.sub("", out)
    out = _REF_DEF.sub("", _TABLE_SEP.sub("", _RULE.sub("", out)))
    out = _TABLE_ROW.sub(lambda m: ", ".join(c.strip() for c in m.group(1).split("|") if c.strip()), out)
    out = _ITEM.sub("", _QUOTE.sub("", _HEADER.sub(r"\1", out)))
    out = _AUTOLINK.sub(r"\1", _LINK.sub(r"\1", _IMAGE.sub(r"\1", out)))
    out = _CODE.sub(lambda m: m.group(2).strip(), _HTML.sub(" ", out))
    for pattern in _EMPHASIS:
        out = pattern.sub(r"\2", out)
    return _STRAY.sub("", out).translate(_RELEASE)


def battle_text(text: str, sources: Iterable[str] = (), limit: int = BLIND_CHARS, cut: bool | None = None) -> str:
    """An answer as a blind battle shows it before the vote, the one normaliser for both sides: `blind_text`, then
    plain text in one paragraph, cut at its last full sentence within `limit` characters. `cut` says whether the
    token limit stopped the answer: then a last unfinished sentence is dropped (an answer with no full sentence
    keeps its whole words and ends with an ellipsis); when it finished on its own, its last words are a sentence and
    get a full stop; None (not known) drops an unfinished last sentence only after a full one. "" stays ""."""
    lines = [line.strip() for line in blind_text(plain_text(text), sources).splitlines()]
    return _cut(_paragraph([line for line in lines if line]), max(int(limit), 1), cut)


def _paragraph(lines: list[str]) -> str:
    """Lines joined into one paragraph: a line that a list item, header or table row left without an end mark gets
    one, unless the next line goes on in lower case (a wrapped sentence)."""
    out = ""
    for line, after in zip(lines, [*lines[1:], ""][: len(lines)], strict=True):
        ends = line[-1] in _TERMINAL + ":;,"
        out += line + ("" if ends or not after or after[0].islower() else _stop(line)) + " "
    return re.sub(r"\s+", " ", out).strip()


def _stop(text: str) -> str:
    """The full stop that suits the script the text ends in."""
    return "\u3002" if _WIDE.match(text[-1:]) else "."


def _sentence_ends(text: str) -> list[int]:
    """Where sentences end in `text` (the index after the mark). Not an end, where it can be told without a
    language's word list: a point inside a number (3.5, no space follows), after a single letter or a word with an
    inner point (e.g., J. Smith, U.S.), or before a word in lower case (approx. five)."""
    ends = []
    for m in _END.finditer(text):
        word = text[: m.start()].rsplit(None, 1)[-1] if text[: m.start()].strip() else ""
        after = text[m.end() :].lstrip()
        if m.group().startswith(".") and len(m.group().rstrip("\"')]")) == 1:
            if (len(word) == 1 and word.isalpha()) or "." in word or after[:1].islower():
                continue
        ends.append(m.end())
    return ends


def _cut(text: str, limit: int, cut: bool | None) -> str:
    """`text` up to its last full sentence within `limit`; see battle_text for `cut`."""
    if not text:
        return ""
    ends = [e for e in _sentence_ends(text) if e <= limit]
    if ends and ends[-1] == len(text):
        return text
    if len(text) <= limit and (cut is False or (cut is None and not ends)):
        return text + _stop(text)  # the answer's own last words: a sentence without its mark
    if ends:
        return text[: ends[-1]]
    words = text[:limit].split()  # nothing ends within the budget: whole words, the last one may be cut
    kept = " ".join(words[:-1] if len(words) > 1 and (cut or len(text) > limit) else words)
    return kept.rstrip(" ,;:-\u2013\u2014") + "\u2026"


class BattleError(LabError):
    """A vote names a battle that was never issued, is not finished, failed or already has its vote."""


def pick_pair(contestants: list[str], rng: random.Random | None = None) -> tuple[str, str]:
    """Two different contestants in random order (side A, side B)."""
    pool = list(dict.fromkeys(c for c in contestants if c))
    if len(pool) < 2:
        raise BattleError(f"a battle needs at least two different contestants; got {pool or 'none'}")
    a, b = (rng or random.Random()).sample(pool, 2)
    return a, b


def start_battle(db_path, question: str, system_a: str, system_b: str, settings: dict[str, Any] | None = None) -> str:
    """Record an issued battle (answers still to come); returns its random id."""
    if not question.strip() or not system_a or not system_b:
        raise BattleError("a battle needs a question and both contestant ids")
    battle_id = secrets.token_hex(8)
    db.init(db_path)
    with db.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO battles (id, created_at, question, system_a, system_b, status, settings)"
            " VALUES (?, ?, ?, ?, ?, 'generating', ?)",
            (battle_id, time.time(), question, system_a, system_b, db.dumps(settings or {})),
        )
    return battle_id


def finish_battle(db_path, battle_id: str, answer_a: str, answer_b: str) -> None:
    """Store both complete answers: from now on the battle can take its one vote."""
    with db.connect(db_path) as conn:
        conn.execute(
            "UPDATE battles SET answer_a = ?, answer_b = ?, status = 'ready' WHERE id = ? AND status = 'generating'",
            (answer_a, answer_b, battle_id),
        )


def fail_battle(db_path, battle_id: str) -> None:
    """A contestant failed: the battle can never be voted on."""
    with db.connect(db_path) as conn:
        conn.execute("UPDATE battles SET status = 'failed' WHERE id = ? AND status = 'generating'", (battle_id,))


def get_battle(db_path, battle_id: str) -> dict[str, Any] | None:
    db.init(db_path)
    found = db.rows(db_path, "SELECT * FROM battles WHERE id = ?", (str(battle_id or ""),))
    return found[0] if found else None


def vote(db_path, battle_id: str, winner: str) -> dict[str, Any]:
    """Store the one vote of a finished battle; returns the battle row with `vote_id`, `blind` and `seen_in` (the
    earlier vote that revealed one of its answers, when it is not blind) set.

    Raises BattleError for an id this server never issued, an unfinished or failed battle, or a second vote;
    ValueError for a winner outside WINNERS. Check and insert happen in one write transaction, so two
    simultaneous votes for the same battle cannot both be stored.
    """
    if winner not in WINNERS:
        raise BattleError(f"winner {winner!r} is not one of {', '.join(WINNERS)}")
    battle_id = str(battle_id or "").strip()
    if not Path(db_path).is_file():
        _check_votable(battle_id, None)  # no database yet: no battle was ever issued
    with db.connect(db_path) as conn:
        try:
            row = conn.execute("SELECT * FROM battles WHERE id = ?", (battle_id,)).fetchone()
        except sqlite3.OperationalError:  # a database from before battles existed: nothing issued yet
            row = None
        battle = dict(row) if row else None
        _check_votable(battle_id, battle)
        seen_in = _seen_in(conn, battle)
        cur = conn.execute(
            "INSERT INTO votes (created_at, question, system_a, system_b, answer_a, answer_b, winner, blind, settings)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), *(battle[k] for k in ("question", "system_a", "system_b", "answer_a", "answer_b")), winner,
             int(seen_in is None), battle["settings"]),
        )  # fmt: skip
        vote_id = int(cur.lastrowid)
        conn.execute("UPDATE battles SET status = 'voted', vote_id = ? WHERE id = ?", (vote_id, battle_id))
    return battle | {"status": "voted", "vote_id": vote_id, "winner": winner, "blind": seen_in is None,
                     "seen_in": seen_in}  # fmt: skip


def _question_key(question: str) -> str:
    """A question as compared for repeats: case, spacing and closing punctuation do not make it new."""
    return " ".join(str(question or "").split()).casefold().rstrip("?!. ")


def _seen_in(conn: sqlite3.Connection, battle: dict[str, Any]) -> int | None:
    """The first earlier vote whose reveal named one of this battle's answers (the same text, to the same question,
    from the same contestant), or None. Its voter can recognise that side, so the vote is not blind; two identical
    answers tell no side apart."""
    if battle["answer_a"] == battle["answer_b"]:
        return None
    mine = {(battle["system_a"], battle["answer_a"]), (battle["system_b"], battle["answer_b"])}
    names = (battle["system_a"], battle["system_b"]) * 2
    earlier = conn.execute(
        "SELECT id, question, system_a, system_b, answer_a, answer_b FROM votes"
        " WHERE system_a IN (?, ?) OR system_b IN (?, ?) ORDER BY id",
        names,
    ).fetchall()
    key = _question_key(battle["question"])
    for row in earlier:
        shown = {(row["system_a"], row["answer_a"]), (row["system_b"], row["answer_b"])}
        if mine & shown and _question_key(row["question"]) == key:
            return int(row["id"])
    return None


def _check_votable(battle_id: str, battle: dict[str, Any] | None) -> None:
    if battle is None:
        raise BattleError(
            f"battle {battle_id!r} was not issued by this server: start a battle (arena_battle) and vote with "
            "the battle id it returns"
        )
    if battle["status"] == "voted":
        raise BattleError(
            f"battle {battle_id!r} already has its vote (#{battle['vote_id']}): each battle takes one vote, "
            "start a new battle"
        )
    if battle["status"] == "failed":
        raise BattleError(f"battle {battle_id!r} failed (a contestant could not answer): start a new battle")
    if battle["status"] != "ready":
        raise BattleError(f"battle {battle_id!r} is still generating its answers: vote when both are shown")


def load_votes(db_path, blind_only: bool = True) -> list[dict[str, Any]]:
    """Votes oldest first (blind ones only by default)."""
    db.init(db_path)
    where = "WHERE blind = 1" if blind_only else ""
    return db.rows(db_path, f"SELECT * FROM votes {where} ORDER BY id")


VOTE_FIELDS = ("id", "created_at", "question", "system_a", "system_b", "answer_a", "answer_b", "winner", "blind",
               "settings")  # fmt: skip


def votes_csv(db_path) -> str:
    """Every vote (blind or not), oldest first, as CSV with a header row."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=VOTE_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(load_votes(db_path, blind_only=False))
    return buf.getvalue()


def reset_votes(db_path) -> int:
    """Delete every vote and every issued battle (a battle issued before the reset cannot be voted on after it);
    returns how many votes were deleted."""
    db.init(db_path)
    with db.connect(db_path) as conn:
        n = conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
        conn.execute("DELETE FROM votes")
        conn.execute("DELETE FROM battles")
    return int(n)
