"""Who may do what. With LAB_AUTH set (a login), only teacher accounts may reset the Arena's votes, export them
and delete runs, evaluations and indexes: the users named in LAB_TEACHERS (comma-separated), else the first user
of LAB_AUTH. Without LAB_AUTH a lab bound to this computer (loopback) has a single user, who may do all of it; a
lab without a login that others can reach (a Hugging Face Space, SPACE_ID set, a share link, or bound beyond
loopback) has no teacher at all: visitors cannot read each other's votes or delete shared work. The check runs in
the event handlers (the real guard); the teacher panel is also hidden from other accounts.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.errors import LabError

AUTH_ENV = "LAB_AUTH"
TEACHERS_ENV = "LAB_TEACHERS"
SPACE_ENV = "SPACE_ID"  # set by Hugging Face on every Space
HOST_ENV = "GRADIO_SERVER_NAME"  # the bound address (app.py and launch() set it from --host / server_name)
SHARE_ENV = "GRADIO_SHARE"  # a public share link (launch(share=True) sets it too)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class NotAllowed(LabError):
    """The signed-in account may not do this (it is not a teacher account)."""


def read_auth(value: str) -> list[tuple[str, str]]:
    """`user:password`, or the path of a file with one such line per user; [] when empty."""
    value = value.strip()
    if not value:
        return []
    path = _file(value)
    is_file = path is not None
    lines = path.read_text(encoding="utf-8").splitlines() if is_file else [value]
    pairs = []
    for n, line in enumerate(lines, 1):
        user, sep, password = line.strip().partition(":")
        if not line.strip() or line.strip().startswith("#"):
            continue
        if not sep or not user or not password:
            where = f"{path.name} line {n}" if is_file else "its value"
            raise LabError(f"{AUTH_ENV}: {where} is not user:password (password not shown); fix it or unset it")
        pairs.append((user, password))
    return pairs


def _file(value: str) -> Path | None:
    """The file `value` names, or None (also for a value that cannot be a path at all: too long, a NUL byte, an
    unknown ~user), which is then read as user:password."""
    try:
        path = Path(value).expanduser()
        return path if path.is_file() else None
    except (OSError, ValueError, RuntimeError):
        return None


def teachers() -> set[str]:
    """The teacher accounts: LAB_TEACHERS, else the first LAB_AUTH user; empty without a login."""
    named = {u.strip() for u in os.environ.get(TEACHERS_ENV, "").split(",") if u.strip()}
    users = [user for user, _ in read_auth(os.environ.get(AUTH_ENV, ""))]
    return named or set(users[:1])


def public_without_login() -> bool:
    """True when the lab has no login and others can reach it: on a Space, through a share link, or bound beyond
    loopback."""
    if os.environ.get(AUTH_ENV, "").strip():
        return False
    shared = os.environ.get(SHARE_ENV, "").strip().lower() in ("1", "true", "yes")
    return bool(os.environ.get(SPACE_ENV)) or shared or (os.environ.get(HOST_ENV) or LOOPBACK[0]) not in LOOPBACK


def is_teacher(request) -> bool:
    """Without a login: True on this computer (one user), False when others can reach the lab; with a login: when
    the signed-in account is a teacher account."""
    if not os.environ.get(AUTH_ENV, "").strip():
        return not public_without_login()
    return (getattr(request, "username", None) or "") in teachers()


def require_teacher(request, action: str) -> None:
    """Raise NotAllowed naming `action` unless `is_teacher(request)`."""
    if public_without_login():
        raise NotAllowed(
            f"nobody may {action} on a lab that others can reach without a login (a Space or a public address): "
            f"set {AUTH_ENV} (a secret) and {TEACHERS_ENV} to name a teacher account"
        )
    if not is_teacher(request):
        who = getattr(request, "username", None) or "this account"
        raise NotAllowed(f"only a teacher account may {action} ({who} is not one; teachers: {TEACHERS_ENV})")
