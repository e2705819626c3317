"""The shell lines of the guides: what tests/unit/test_docs_commands.py checks against the CLI
and tests/e2e/test_guides.py runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Line:
    """One shell line of a guide (continuations joined), with where it starts."""

    doc: str
    number: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.number}"


def shell_lines(text: str, doc: str) -> list[Line]:
    """Lines of the shell (or unlabelled) fenced blocks of a markdown text."""
    out: list[Line] = []
    fence: str | None = None
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            pending = None
            continue
        if fence is None or fence not in SHELL_FENCES:
            continue
        body = stripped.removeprefix("$ ")
        start, body = (pending[0], pending[1] + " " + body) if pending else (number, body)
        if body.endswith("\\"):
            pending = (start, body[:-1].rstrip())
            continue
        pending = None
        out.append(Line(doc, start, body))
    return out


def guide_lines(docs: list[Path] = DOCS) -> list[Line]:
    """Every non-empty shell line of the guides (docs/*.md and the README)."""
    return [line for doc in docs
            for line in shell_lines(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).as_posix())
            if line.text]
