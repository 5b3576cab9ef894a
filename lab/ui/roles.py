"""Who may do what, from one `ServerSettings` built at start (app.py: argv and environment) and passed to the tabs.
With a login (LAB_AUTH) only teacher accounts may reset the Arena's votes, export them and delete runs, evaluations
and indexes: the users named in LAB_TEACHERS (comma-separated), else the first LAB_AUTH user. Without a login a lab
bound to this computer (loopback) has a single user, who may do all of it; a lab without a login that others can
reach (a Hugging Face Space, a share link, or bound beyond loopback) has no teacher at all. The check runs in the
event handlers (the real guard); the teacher panel is also hidden from other accounts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from lab.errors import LabError

AUTH_ENV = "LAB_AUTH"
TEACHERS_ENV = "LAB_TEACHERS"
SPACE_ENV = "SPACE_ID"  # set by Hugging Face on every Space
HOST_ENV = "GRADIO_SERVER_NAME"  # gradio's own variable for the address to bind (--host wins)
PORT_ENV = "GRADIO_SERVER_PORT"
SHARE_ENV = "GRADIO_SHARE"  # gradio's own switch for a public share link
LOCALHOST = "127.0.0.1"
LOOPBACK = (LOCALHOST, "localhost", "::1")


class NotAllowed(LabError):
    """The signed-in account may not do this (it is not a teacher account)."""


@dataclasses.dataclass
class ServerSettings:
    """How the lab is served: the address, port, share link, login accounts, teacher accounts and the Space it runs
    on. Built once (`from_env`) and passed to the app and its tabs; `launch` records its own arguments here (a
    share link or address given to it from Python), so the handlers and the public-lab notice see what is served."""

    host: str = LOCALHOST
    port: int | None = None
    share: bool = False
    users: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    named_teachers: frozenset[str] = frozenset()
    space: str = ""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, host: str | None = None, port: int | None = None
    ) -> ServerSettings:
        """The settings from `env` (default os.environ), `host` and `port` (command-line flags) winning. A malformed
        LAB_AUTH or port raises LabError naming it."""
        env = os.environ if env is None else env
        raw_port = (env.get(PORT_ENV) or "").strip()
        if port is None and raw_port:
            if not raw_port.isdigit():
                raise LabError(f"{PORT_ENV}={raw_port!r} is not a port number; set it to e.g. 7860 or unset it")
            port = int(raw_port)
        return cls(
            host=(host or env.get(HOST_ENV) or "").strip() or LOCALHOST,
            port=port,
            share=(env.get(SHARE_ENV) or "").strip().lower() in ("1", "true", "yes"),
            users=read_auth(env.get(AUTH_ENV) or ""),
            named_teachers=frozenset(u.strip() for u in (env.get(TEACHERS_ENV) or "").split(",") if u.strip()),
            space=(env.get(SPACE_ENV) or "").strip(),
        )

    @property
    def login(self) -> bool:
        return bool(self.users)

    def teachers(self) -> set[str]:
        """The teacher accounts: LAB_TEACHERS, else the first LAB_AUTH user; empty without a login."""
        return set(self.named_teachers) or {user for user, _ in self.users[:1]}

    def public_without_login(self) -> bool:
        """True when the lab has no login and others can reach it: on a Space, through a share link, or bound
        beyond loopback."""
        return not self.login and (bool(self.space) or self.share or self.host not in LOOPBACK)

    def is_teacher(self, request) -> bool:
        """Without a login: True on this computer (one user), False when others can reach the lab; with a login:
        when the signed-in account is a teacher account."""
        if not self.login:
            return not self.public_without_login()
        return (getattr(request, "username", None) or "") in self.teachers()

    def require_teacher(self, request, action: str) -> None:
        """Raise NotAllowed naming `action` unless `is_teacher(request)`."""
        if self.public_without_login():
            raise NotAllowed(
                f"nobody may {action} on a lab that others can reach without a login (a Space or a public "
                f"address): set {AUTH_ENV} (a secret) and {TEACHERS_ENV} to name a teacher account"
            )
        if not self.is_teacher(request):
            who = getattr(request, "username", None) or "this account"
            raise NotAllowed(f"only a teacher account may {action} ({who} is not one; teachers: {TEACHERS_ENV})")


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
