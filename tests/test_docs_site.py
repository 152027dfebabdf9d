"""The documentation site builds (`mkdocs build --strict`) and renders what it should.

A build that passes --strict can still render badly (doctest examples as nested
block quotes run into one paragraph, signatures on one scrolling line), so this
reads the rendered HTML. The example notebook is not executed here
(`BACKORDER_DOCS_EXECUTE=false`: tests/test_notebook.py runs it); CI's docs step
builds it executed.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# the widest code line a page shows whole: Material's content column between
# both sidebars holds 80 characters of code
WIDTH = 80
# pages whose code blocks are kept by others (reported to them)
NOT_YET_NARROW = {"cli.md", "howto-web.md"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter"):
        pytest.importorskip(module, reason="the docs extra is not installed")
    if sys.version_info < (3, 11):
        # the releases pip picks for 3.10 do not work together (mkdocstrings'
        # Highlighter and pymdown-extensions' Highlight disagree); the site is
        # built and checked on the Python CI builds the docs with
        pytest.skip("the documentation toolchain is built and checked on Python 3.11+")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "BACKORDER_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return out


def _code_blocks(page: str) -> list[str]:
    # the text of every highlighted block, markup stripped
    blocks = re.findall(r"<pre[^>]*>(.*?)</pre>", page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks]


def test_the_api_reference_renders_doctest_examples_as_code(site: Path) -> None:
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    examples = [block for block in _code_blocks(page) if block.lstrip().startswith(">>> ")]
    assert len(examples) >= 6  # place, receive, adjust, cancel, ship, position, ...
    assert any(
        'book.place(Order("A-1", [OrderLine("MUG", 2)]))' in block and "\n>>> " in block
        for block in examples
    )
    # and none left as the nested block quotes Markdown makes of `>>>`
    assert "<blockquote>\n<blockquote>" not in page
    assert not re.search(r"<p>&gt;&gt;&gt; ", page)


def test_long_signatures_are_formatted_one_parameter_a_line(site: Path) -> None:
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    signatures = [
        html.unescape(re.sub(r"<[^>]+>", "", block))
        for block in re.findall(
            r'<div class="doc-signature highlight"><pre>(.*?)</pre>', page, re.S
        )
    ]
    receive = next(s for s in signatures if s.startswith("receive("))
    assert receive.splitlines()[1].strip() == "sku: str,"
    assert max(len(line) for s in signatures for line in s.splitlines()) <= WIDTH


def test_the_notebook_is_a_page_of_the_site(site: Path) -> None:
    page = (site / "examples" / "choosing-a-policy" / "index.html").read_text(encoding="utf-8")
    assert "Choosing a policy" in page
    assert "synthetic(preset=preset, seed=SEED)" in html.unescape(re.sub(r"<[^>]+>", "", page))
    assert (site / "examples" / "choosing-a-policy" / "choosing-a-policy.ipynb").is_file()
    nav = (site / "index.html").read_text(encoding="utf-8")
    assert "examples/choosing-a-policy/" in nav


def test_code_blocks_fit_the_page() -> None:
    too_wide = []
    for path in sorted(DOCS.glob("*.md")):
        if path.name in NOT_YET_NARROW:
            continue
        inside = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                inside = not inside
            elif inside and len(line) > WIDTH:
                too_wide.append(f"{path.name}:{number}: {len(line)} characters")
    assert not too_wide


def test_the_pages_say_what_is_true() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert "planned" not in index
    assert "DESIGN.md" not in index
    simulate = (DOCS / "simulate.md").read_text(encoding="utf-8")
    assert "Not yet" not in simulate
    assert "examples/choosing-a-policy.ipynb" in simulate
    for name in ("steady", "scarce", "lumpy", "late-supplier"):
        assert f"`{name}`" in simulate
