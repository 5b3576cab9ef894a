"""Where the workspace lives: LAB_HOME when set, else a persistent volume at /data (a Hugging Face Space with
persistent storage), else the app folder's ./workspace in a source checkout, or ~/.expertlab for an installed
package.

Owns only that choice (`storage_root`) and where the shipped sample domain is read from (`sample_dir`); the
layout under the root belongs to lab/workspace.py. Lowest layer: standard library only, nothing here creates the
workspace.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent  # the folder holding app.py (the Space's repository)
HOME_ENV = "LAB_HOME"
PACKAGE_DIR = Path(__file__).resolve().parent  # the `lab` package itself


def sample_dir() -> Path:
    """The shipped sample domain (eval.jsonl, train.jsonl, docs/, showcase/): the package data `lab/sample_data`
    of an installed package, else the `data` folder beside `lab/` in a source checkout."""
    installed = PACKAGE_DIR / "sample_data"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "data"


def writable_dir(path: str | Path) -> bool:
    """True when `path` is a folder a file can really be created in (a read-only mount says no, even to root)."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".expertlab-probe-"):
            return True
    except OSError:
        return False


def default_root(app_dir: Path = APP_DIR) -> Path:
    """APP_DIR/workspace in a source checkout (app.py beside `lab/`); ~/.expertlab for an installed package, whose
    parent folder is site-packages and no place for a user's work."""
    return app_dir / "workspace" if (app_dir / "app.py").is_file() else Path.home() / ".expertlab"


def storage_root(env: Mapping[str, str] | None = None, data_dir: str | Path = "/data") -> Path:
    """The workspace root: `LAB_HOME` if set (and not blank), else `data_dir` when it is a writable folder (a
    Space's persistent volume is mounted at /data), else `default_root()`."""
    env = os.environ if env is None else env
    home = (env.get(HOME_ENV) or "").strip()
    if home:
        return Path(home).expanduser()
    if writable_dir(data_dir):
        return Path(data_dir)
    return default_root()
