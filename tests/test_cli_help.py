"""Every command's --help reads cleanly: defaults shown where they inform, never as None or twice."""

from __future__ import annotations

import importlib
import re

import pytest

PARSER_MODULES = [
    "zoo_runtime.cli",
    "zoo_export.cli",
    "zoo_train.cli",
    "zoo_gui.app",
    "zoo_gui.screenshots",
    "zoo_serve.cli",
    "zoo_serve.triton",
]


@pytest.mark.parametrize("module", PARSER_MODULES)
def test_help_shows_each_default_once_and_never_none(module: str) -> None:
    parser = importlib.import_module(module).build_parser()
    text = " ".join(parser.format_help().split())
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    for action in parser._actions:
        if action.help:
            option_help = " ".join(parser._get_formatter()._expand_help(action).split())
            assert len(re.findall(r"\bdefault\b", option_help)) <= 1, f"{module} {action.dest}: {option_help!r}"


def test_help_still_shows_informative_defaults() -> None:
    text = " ".join(importlib.import_module("zoo_export.cli").build_parser().format_help().split())
    assert "which files to write (default: all)" in text
    assert "default: <run>/export" in text
