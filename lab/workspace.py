"""The disk layout under LAB_HOME: the only module that knows where things live.

    LAB_HOME/
      lab.db             SQLite: run records, arena votes, evaluations
      datasets/NAME/     train.jsonl, val.jsonl, meta.json      (saved fine-tuning datasets)
      corpora/NAME/      documents for RAG
      runs/RUN_ID/       a training run (config, progress.jsonl, adapter/, checkpoints/)
      indexes/NAME/      a RAG index
      evals/EVAL_ID/     a batch evaluation's results
      models/            cache of converted embedded models
      downloads/         copies of files a user asked to download: the ONLY workspace folder the app serves

Writes that must be all-or-nothing go through `atomic_dir`: build in a hidden sibling, then rename.
No heavy imports here; nothing here knows about gradio.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KINDS = ("datasets", "corpora", "runs", "indexes", "evals")
SAMPLE = "sample"  # the shipped sample domain's name: its dataset, corpus and index
SINGULAR = {"datasets": "dataset", "corpora": "corpus", "runs": "run", "indexes": "index", "evals": "evaluation"}


class WorkspaceError(LabError):
    """A name or path in the workspace is not usable; the message says why and what to do."""


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a safe folder name, else raise a WorkspaceError naming it."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith("."):
        raise WorkspaceError(
            f"{what} {name!r} is not usable: use 1-64 letters, digits, '.', '_' or '-' (start with a letter or digit)"
        )
    return name


def slugify(text: str, default: str = "item") -> str:
    """Turn free text (a file name, a title) into a safe name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(text)).stem).strip("-._")[:64]
    return slug or default


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_env(cls) -> Workspace:
        """LAB_HOME, else a Space's persistent /data volume, else the app folder's workspace (lab.storage)."""
        from lab.storage import storage_root

        return cls.open(storage_root())

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        ws = cls(Path(root).expanduser().resolve())
        try:
            for sub in (*KINDS, "models", "tmp", "downloads"):
                (ws.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"workspace {str(ws.root)!r} cannot be created or written ({exc.strerror or exc}): "
                "set LAB_HOME to a writable folder"
            ) from None
        return ws

    @property
    def db_path(self) -> Path:
        return self.root / "lab.db"

    @property
    def model_cache(self) -> Path:
        return self.root / "models"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def downloads(self) -> Path:
        """The only workspace folder the app serves over HTTP (see `publish`)."""
        return self.root / "downloads"

    def publish(self, files: list[Path], kind: str, name: str) -> list[Path]:
        """Copy `files` of item `kind/name` into downloads/KIND/NAME/ (replaced whole); return the copies."""
        target = self.downloads / self.dir(kind, name).relative_to(self.root)
        staging = target.parent / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir(parents=True)
        try:
            for path in files:
                shutil.copyfile(path, staging / Path(path).name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:  # a concurrent publish of the same item won; its copies are the same files
            shutil.rmtree(staging, ignore_errors=True)
        return [target / Path(p).name for p in files]

    def dir(self, kind: str, name: str) -> Path:
        """Folder of one saved item of `kind` (datasets, corpora, runs, indexes, evals)."""
        if kind not in KINDS:
            raise WorkspaceError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        return self.root / kind / check_name(name)

    def list(self, kind: str) -> list[str]:
        base = self.root / kind
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def exists(self, kind: str, name: str) -> bool:
        return self.dir(kind, name).is_dir()

    def delete(self, kind: str, name: str) -> None:
        path = self.dir(kind, name)
        if not path.is_dir():
            existing = ", ".join(self.list(kind)) or "none"
            raise WorkspaceError(f"no {SINGULAR[kind]} named {name!r}; existing: {existing}")
        shutil.rmtree(path)

    @contextlib.contextmanager
    def atomic_dir(self, kind: str, name: str, overwrite: bool = False) -> Iterator[Path]:
        """Yield a hidden staging folder; on success it replaces `kind/name`, on error it vanishes.

        An existing item survives any failure: it is only swapped out after the new one is complete.
        A full disk becomes a WorkspaceError saying so.
        """
        final = self.dir(kind, name)
        if final.exists() and not overwrite:
            raise WorkspaceError(f"{SINGULAR[kind]} {name!r} already exists; pick another name or delete it first")
        staging = final.parent / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            staging.mkdir(parents=True)
            yield staging
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WorkspaceError(
                    f"the disk holding {self.root} is full: {SINGULAR[kind]} {name!r} was not saved (anything saved "
                    "before is intact); free some space, e.g. delete old runs or indexes, and try again"
                ) from None
            raise
        old = final.parent / f".{name}.{uuid.uuid4().hex[:8]}.old"
        if final.exists():
            final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def clean_staging(self, min_age_s: float = 3600.0) -> int:
        """After a crash: put back an item killed between its two renames (`.NAME.x.old` with no NAME), and remove
        staging folders older than `min_age_s` (younger ones may belong to a build running now). Returns how many
        folders were restored or removed."""
        count = 0
        for kind in KINDS:
            for path in (self.root / kind).glob(".*.old"):
                final = path.parent / path.name[1:].rsplit(".", 2)[0]
                if not final.exists():
                    path.rename(final)
                    count += 1
            for path in (self.root / kind).glob(".*.tmp"):
                if time.time() - path.stat().st_mtime > min_age_s:
                    shutil.rmtree(path, ignore_errors=True)
                    count += 1
        return count
