"""Helpers for the command-line tests: run `backorder` in-process, in a
subprocess, or with stderr on a pseudo-terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from backorder.cli import replay

__all__ = ["jsonl", "on_terminal", "run_module", "run_replay"]


def jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write `records` as JSON Lines to `path`."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def run_replay(
    path: Path, policy: str | None = "partial", db: Path | None = None, skip_bad: bool = False
) -> tuple[int, str, str]:
    """`replay(...)` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = replay(path, policy, db, skip_bad, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def run_module(args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m backorder ARGS` with stdout and stderr captured (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "backorder", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def on_terminal(args: Sequence[str], tmp_path: Path) -> tuple[int, str, str]:
    """`python -m backorder ARGS` with stderr on a pseudo-terminal (stdout
    to a file): (exit code, stdout, what the terminal received)."""
    master, slave = pty.openpty()
    out_path = tmp_path / "terminal-stdout.txt"
    with out_path.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "backorder", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=slave,
        )
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    code = child.wait(timeout=120)
    os.close(master)
    return code, out_path.read_text(), received.decode("utf-8", "replace")
