"""The demo, the command line, and the doctests in every public docstring."""

from __future__ import annotations

import argparse
import doctest
import importlib
import importlib.metadata
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import backorder
from backorder import cli
from backorder.cli import demo, main

MODULES = [
    "backorder.book",
    "backorder.domain",
    "backorder.ledger",
    "backorder.policies",
    "backorder.testing.policy",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
    if name in ("backorder.book", "backorder.domain"):
        assert tried > 0


def test_the_demo_tells_the_story() -> None:
    out = io.StringIO()
    book = demo(out)
    text = out.getvalue()
    assert "cleo is complete" in text
    assert "ledger verified." in text
    assert book.waiting("LAMP-OAK") == ()
    assert book.line("cleo", "LAMP-OAK").allocated == 3
    assert book.line("ben", "LAMP-OAK").cancelled == 1
    book._check()


def test_python_dash_m_backorder_demo_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backorder", "demo"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "ledger verified." in done.stdout


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["no-such-command"])
    assert caught.value.code == 2


def test_every_public_name_is_documented() -> None:
    for name in backorder.__all__:
        value = getattr(backorder, name)
        if name in ("MAX_QUANTITY", "Clock"):
            continue
        assert (value.__doc__ or "").strip(), name
        for attribute, member in vars(value).items() if isinstance(value, type) else []:
            if attribute.startswith("_") or not callable(member):
                continue
            assert (member.__doc__ or "").strip(), f"{name}.{attribute}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"backorder {importlib.metadata.version('backorder')}\n"
    done = subprocess.run(
        [sys.executable, "-m", "backorder", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("backorder ")


def test_the_version_falls_back_to_the_package_when_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert cli._version() == backorder.__version__


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **commands.choices}


def test_every_option_has_help_and_shows_its_default() -> None:
    for name, parser in _subcommands().items():
        text = parser.format_help()
        assert "(default: None)" not in text, name
        assert "(default: False)" not in text, name
        for action in parser._actions:
            assert action.help, (name, action.dest)
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "(default: " in parser._get_formatter()._expand_help(action) or (
                    "%(default)" in action.help
                ), (name, action.dest)
    simulate_help = _subcommands()["simulate"].format_help()
    for default in ("(default: 90,", "(default: 40.0,", "(default: 1.5,", "(default: 0,"):
        assert default in " ".join(simulate_help.split()), default


# --- docs/cli.md: true to the code, its examples run --------------------------

CLI_DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _marked_blocks() -> list[tuple[str, str]]:
    # (what, text) of every ```text block marked with <!-- what --> above it
    return re.findall(r"<!-- (.+?) -->\n```text\n(.*?)```", CLI_DOC.read_text(), re.S)


def test_the_cli_page_names_every_command() -> None:
    text = CLI_DOC.read_text()
    commands = [name for name in _subcommands() if name]
    assert commands == ["demo", "replay", "status", "simulate"]
    assert "four\ncommands" in text or "four commands" in text
    for name in commands:
        assert f"\n## `{name}" in text, name


def test_the_cli_page_examples_run_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = 0
    for what, body in _marked_blocks():
        if not what.startswith("backorder "):
            Path(what).write_text(body)  # an example file
            continue
        if what.startswith("backorder status"):
            assert main(["replay", "events.jsonl", "--db", "shop.db"]) == 0
            capsys.readouterr()
        code = main(shlex.split(what)[1:])
        said = capsys.readouterr()
        expected = 1 if "bad" in what else 0
        assert code == expected, (what, said.err)
        assert (said.err if code else said.out) == body, what
        ran += 1
    assert ran == 3
