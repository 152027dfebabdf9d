"""A griffe extension for the API reference: doctest blocks render as code.

Griffe reads `>>>` lines as code only inside an `Examples:` section; anywhere
else in a docstring Markdown takes them for nested block quotes, run together
into one paragraph. This extension wraps every doctest block (from a `>>>`
line to the next blank line) that is not already fenced in a ```` ```pycon ````
fence, so it renders as a highlighted code block. The docstrings themselves,
and the doctests the test suite runs from them, are unchanged.

Used from mkdocs.yml: `extensions: [docs/_ext/doctest_fences.py]`.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """`text` with every unfenced doctest block wrapped in a pycon fence."""
    lines = text.splitlines()
    out: list[str] = []
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (stripped.startswith(">>> ") or stripped == ">>>"):
            indent = line[: len(line) - len(stripped)]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest blocks of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite `obj`'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
