"""Every command's --help reads as prose: no line breaks mid-sentence, a one-sentence summary."""

import re

import pytest
import typer
from typer.testing import CliRunner

from bonebase.cli import app
from bonebase.cli_help import normalise

WIDTH = 100


def _commands():
    def walk(cmd, path):
        yield path, cmd
        for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


COMMANDS = _commands()


def test_the_walk_sees_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"init", "db scrub-prefect", "secret generate", "models server start",
            "site list", "submit"} <= names
    assert len(names) > 40


def test_no_help_paragraph_holds_a_line_break():
    for path, cmd in COMMANDS:
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            for paragraph in text.split("\n\n"):
                assert "\n" not in paragraph, (path, paragraph)


def test_summary_is_one_sentence():
    for path, cmd in COMMANDS:
        summary = (cmd.help or "").split("\n\n")[0]
        assert summary, f"bonebase {' '.join(path)} has no help"
        assert not re.search(r"[.!?]\s+[A-Z`]", summary), (path, summary)


def _hard_breaks(lines, width):
    """Pairs of lines of one paragraph where the first ends although the next word would fit."""
    for line, following in zip(lines, lines[1:], strict=False):
        if line.strip() and following.strip():
            if len(line.rstrip()) + 1 + len(following.split()[0]) <= width:
                yield line, following


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) or "bonebase"
                                                         for p, _ in COMMANDS])
def test_rendered_help_wraps_only_at_the_width(path, cmd):
    """In the rendered --help (description and command list), a line inside a paragraph ends
    only where the next word would not fit: a shorter line is a hard break from the docstring,
    what #17 found in `bonebase db --help`."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    head = result.output.split("╭")[0]  # the description, before the panels
    lines = [line.strip() for line in head.splitlines() if not line.strip().startswith("Usage:")]
    assert not list(_hard_breaks(lines, WIDTH - 4)), path
    rows = result.output.split("╭─ Commands")[1].split("╰")[0].splitlines()[1:] if (
        "╭─ Commands" in result.output) else []
    if rows:
        names = [r.strip("│ ").split()[0] if r[2:3].strip() else "" for r in rows]
        start = rows[0].index(names[0]) + max(len(n) for n in names) + 2
        column = WIDTH - 2 - start - 2  # right padding and border
        cells = [(name, row[start:].rstrip(" │")) for name, row in zip(names, rows, strict=True)]
        for (_, line), (name, following) in zip(cells, cells[1:], strict=False):
            if not name and following:  # a continuation line of the same command
                assert len(line) + 1 + len(following.split()[0]) > column, (path, line, following)


def test_normalise_keeps_paragraphs_and_unwrapped_blocks():
    text = """Do a thing to the
    database. Then say so.

    Details over
    two lines.

    \b
    keep
    these"""
    assert normalise(text) == ("Do a thing to the database.\n\nThen say so.\n\n"
                               "Details over two lines.\n\n\b\nkeep\nthese")
    assert normalise("Use e.g. the\nfirst one.") == "Use e.g. the first one."
