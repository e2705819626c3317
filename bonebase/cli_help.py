"""Help texts of every `bonebase` command, laid out for the terminal they are read in.

Docstrings are wrapped at the source's line length; Typer keeps those line breaks, so `--help` and
the command lists broke lines mid-sentence. :func:`tidy` rewrites each command's help once, after
the sub-apps are mounted: a paragraph's lines are joined (the terminal wraps them), blank lines
still separate paragraphs, and a first paragraph of several sentences becomes a one-sentence
summary followed by the rest as details.
"""

from __future__ import annotations

import inspect
import re

import typer

# A sentence ends at . ! or ? followed by a capital, a quote or a backtick ("e.g. the" is not one).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`'\"(])")
# Click's marker for a paragraph that must not be re-wrapped (a table, a list of commands).
_NO_REWRAP = "\b"


def _join(paragraph: str) -> str:
    lines = paragraph.splitlines()
    if paragraph.startswith(_NO_REWRAP) or any(line.lstrip().startswith(("- ", "* "))
                                               for line in lines):
        return paragraph
    return " ".join(line.strip() for line in lines)


def normalise(text: str) -> str:
    """``text`` with the lines of each paragraph joined and a one-sentence first paragraph."""
    text, cut, rest = inspect.cleandoc(text).partition("\f")  # click hides what follows \f
    paragraphs = [_join(p) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if paragraphs and not paragraphs[0].startswith(_NO_REWRAP):
        summary, *details = _SENTENCE_END.split(paragraphs[0], maxsplit=1)
        paragraphs[0:1] = [summary, *details]
    return "\n\n".join(paragraphs) + cut + rest


def tidy(app: typer.Typer) -> None:
    """Normalise the help of every command and group under ``app`` (in place)."""
    for command in app.registered_commands:
        doc = command.help if command.help is not None else inspect.getdoc(command.callback)
        if doc:
            command.help = normalise(doc)
    for group in app.registered_groups:
        instance = group.typer_instance
        if instance is None:
            continue
        if isinstance(instance.info.help, str):
            instance.info.help = normalise(instance.info.help)
        tidy(instance)
