"""Class mode: the serving defaults for a room of people asking the Arena at once (`python app.py --class`, or
LAB_CLASS=1). More answers decode together (32 rows instead of 16); on a CPU with native bf16 matrix instructions
the app's models answer and evaluate in bfloat16; an index's passage sentences are embedded ahead the first time a
contestant uses it (lab.arena.contestants.warm_ahead). A setting the user gives (LAB_BATCH_SIZE, LAB_SERVE_DTYPE)
always wins.

Boundary: whether class mode is on, read from the environment; the modules that own each setting
(lab.generation.batcher, lab.models, lab.arena.contestants) ask here, and the Teacher tab says what it changed
(lab.ui.teacher_tab.class_mode_line). Imports nothing of the lab.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

CLASS_ENV = "LAB_CLASS"
CLASS_BATCH_SIZE = 32  # rows decoded together in class mode (16 otherwise)


def class_mode(env: Mapping[str, str] | None = None) -> bool:
    """Whether class mode is on: LAB_CLASS is 1/true/yes/on (`app.py --class` sets it for the app's processes)."""
    env = os.environ if env is None else env
    return (env.get(CLASS_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def turn_on(env: dict | None = None) -> None:
    """Turn class mode on for this process and the processes it starts (`app.py --class`)."""
    (os.environ if env is None else env)[CLASS_ENV] = "1"
