"""One error family: LabError messages are shown as they are, a machine's OSError too, anything else is a bug
whose traceback is logged while the user still gets one short line (UI helper and CLI exit codes)."""

from __future__ import annotations

import logging

import pytest

from lab import errors
from lab.arena.battles import BattleError
from lab.config import ConfigError, TrainConfig
from lab.data.store import DataError
from lab.jobs import JobError
from lab.models import ModelError


@pytest.mark.parametrize("cls", [ConfigError, DataError, JobError, ModelError, BattleError])
def test_every_user_error_is_a_lab_error(cls):
    assert issubclass(cls, errors.LabError)


def test_user_message_passes_lab_and_os_errors_and_logs_bugs(caplog):
    with caplog.at_level(logging.ERROR, logger="lab"):
        assert errors.user_message(ConfigError("rank=0: must be positive")) == "rank=0: must be positive"
        assert "No space left" in errors.user_message(OSError(28, "No space left on device"))
        assert not caplog.records  # nothing logged for errors meant for the user
        try:
            {}["missing"]
        except KeyError as exc:
            message = errors.user_message(exc)
    assert message.startswith("unexpected error (KeyError") and "log" in message
    assert caplog.records and caplog.records[0].exc_info and "Traceback" in caplog.text


def test_cli_exit_codes_tell_user_errors_from_bugs(monkeypatch, capsys):
    from lab import cli

    def bad_config(args):
        TrainConfig(rank=0).validate()

    def bug(args):
        return None + 1

    for func, code, words in ((bad_config, 2, "rank"), (bug, 1, "unexpected error (TypeError")):
        parser = cli.build_parser()
        monkeypatch.setattr(cli, "build_parser", lambda p=parser, f=func: _with_func(p, f))
        assert cli.main(["runs"]) == code
        assert words in capsys.readouterr().err


def _with_func(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser
