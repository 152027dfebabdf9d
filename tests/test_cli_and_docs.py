"""The demo, the command line, and the doctests in every public docstring."""

from __future__ import annotations

import doctest
import importlib
import io
import subprocess
import sys

import pytest

import backorder
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
