"""The README's and the docs' Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(
    page: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # examples that open "shop.db" write it here
    for block in python_blocks(page):
        if block.startswith(SNIPPET):
            continue  # an example file, run by its own tests (see below)
        exec(compile(block, str(page), "exec"), {"__name__": "__example__"})
    capsys.readouterr()


SNIPPET = "--8<-- "


def test_included_example_files_exist_and_are_what_the_server_tests_run() -> None:
    # The web page's apps are included from files (pymdownx.snippets); the
    # server tests start exactly those files.
    included = [
        line[len(SNIPPET) :].strip().strip('"')
        for page in PAGES
        for block in python_blocks(page)
        for line in block.splitlines()
        if line.startswith(SNIPPET)
    ]
    assert "docs/examples/web/fastapi_app.py" in included
    for name in included:
        path = ROOT / name
        assert path.is_file(), name
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    servers = (ROOT / "tests" / "test_servers.py").read_text(encoding="utf-8")
    for app in ("fastapi_app:app", "flask_app:app", "manage.py"):
        assert app in servers


def test_the_readme_has_an_example() -> None:
    assert python_blocks(ROOT / "README.md")
