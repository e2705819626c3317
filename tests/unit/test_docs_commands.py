"""Every `bonebase …` line in the guides' shell blocks names a real command with real options,
and every `make X` they mention is a Makefile target.

The commands are checked against the click tree Typer builds from `bonebase.cli.app` (no process
is started), so a renamed command or option fails here with the guide's file and line. Values are
not checked: placeholders such as CODE, ID, N or PATH are fine. tests/e2e/test_guides.py runs
every line, in order, as a real process (the guide walk).
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.doc_shell import DOCS, ROOT, Line, shell_lines

ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MAKE_IN_CODE = re.compile(r"(?:^|[\s;&|(`])make\s+([A-Za-z0-9_][\w.-]*)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def segments(line: str) -> list[list[str]]:
    """The line's simple commands (split at |, &&, ;), as words; `#` comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as exc:  # an unbalanced quote is a broken example too
        raise AssertionError(f"cannot parse the shell line ({exc})") from None
    out, current = [], []
    for word in words:
        if word and set(word) <= set("|&;()<>"):
            out.append(current)
            current = []
        else:
            current.append(word)
    out.append(current)
    return [seg for seg in out if seg]


def _is_group(command) -> bool:
    return hasattr(command, "commands")


def _option_table(command) -> dict[str, bool]:
    """Option name -> whether it takes a value (for skipping that value)."""
    table = {"--help": False}
    for param in command.params:
        if param.param_type_name != "option":
            continue
        takes_value = not (param.is_flag or param.count)
        for name in [*param.opts, *param.secondary_opts]:
            table[name] = takes_value
    return table


def check_words(root, words: list[str], *, parent=None) -> tuple[list[str], object | None]:
    """Check `bonebase` words against the click tree: (problems, the group of the leaf)."""
    command, path, rest = root, ["bonebase"], list(words)
    while _is_group(command) and rest and rest[0].startswith("-") and rest[0] not in ("--help",
                                                                                      "-h"):
        # a group's own option before its sub-command (`bonebase --lang zh-Hans site list`)
        word, options = rest.pop(0), _option_table(command)
        name = word.split("=", 1)[0]
        if name not in options:
            return [f"`{' '.join(path)}` has no option {name}"], parent
        if options[name] and "=" not in word:
            rest = rest[1:]  # the option's value
    while _is_group(command) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            known = ", ".join(sorted(command.commands))
            return [f"`{' '.join(path)} {name}` is not a command (known: {known})"], None
        parent, command = command, sub
        path.append(name)
    label = " ".join(path)
    if _is_group(command):
        if rest and rest[0] not in ("--help", "-h"):
            return [f"`{label}` needs a sub-command, got {rest[0]!r}"], parent
        return [], parent
    options, problems, positional = _option_table(command), [], 0
    it = iter(rest)
    for word in it:
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            if name not in options:
                problems.append(f"`{label}` has no option {name} (it has: "
                                f"{', '.join(sorted(options))})")
            elif options[name] and "=" not in word:
                next(it, None)  # the option's value
        else:
            positional += 1
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    most = sum(max(p.nargs, 1) for p in arguments) if all(p.nargs > 0 for p in arguments) else None
    least = sum(max(p.nargs, 1) for p in arguments if p.required)
    if "--help" not in rest:
        if most is not None and positional > most:
            problems.append(f"`{label}` takes {most} argument(s), the line gives {positional}")
        if positional < least:
            problems.append(f"`{label}` needs {least} argument(s), the line gives {positional}")
    return problems, parent


def check_line(root, words: list[str]) -> list[str]:
    """Problems of one simple command when it is a `bonebase` one (after VAR=value prefixes)."""
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words or words[0] != "bonebase":
        return []
    words = [w.strip("[]") for w in words[1:]]
    problems, _ = check_words(root, [w for w in words if w])
    return problems


def check_shell_line(root, line: str) -> list[str]:
    """A line's problems; `bonebase a b | c | d` reads as alternatives b|c|d under `a`."""
    problems: list[str] = []
    segs = segments(line)
    group_words: list[str] | None = None
    for seg in segs:
        words = seg
        while words and ENV_ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words and words[0] == "bonebase":
            problems += check_line(root, words)
            group_words = _group_path(root, [w.strip("[]") for w in words[1:]])
        elif group_words is not None and words and _is_sibling(root, group_words, words[0]):
            problems += check_line(root, ["bonebase", *group_words, *words])
    return problems


def _group_path(root, words: list[str]) -> list[str] | None:
    """The words naming the group that holds the command the words name."""
    command, path = root, []
    for word in words:
        if not _is_group(command) or word not in command.commands:
            break
        if not _is_group(command.commands[word]):
            return path
        command = command.commands[word]
        path.append(word)
    return None


def _is_sibling(root, group_words: list[str], name: str) -> bool:
    group = root
    for word in group_words:
        group = group.commands[word]
    return name in group.commands


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_][\w.-]*)\s*:(?!=)", text, flags=re.M))


def make_mentions(text: str, doc: str) -> list[tuple[str, str]]:
    """(where, target) for `make X` in shell blocks and in inline code."""
    found = []
    for line in shell_lines(text, doc):
        for seg in segments(line.text):
            if seg[:1] == ["make"] and len(seg) > 1 and not seg[1].startswith("-"):
                found.append((line.where, seg[1]))
    for number, raw in enumerate(text.splitlines(), 1):
        for span in INLINE_CODE.findall(raw):
            found += [(f"{doc}:{number}", t) for t in MAKE_IN_CODE.findall(" " + span)]
    return found


@pytest.fixture(scope="module")
def root():
    import typer.main

    from bonebase.cli import app

    return typer.main.get_command(app)


def _doc_lines() -> list[Line]:
    return [line for doc in DOCS
            for line in shell_lines(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).as_posix())
            if re.search(r"(^|[\s|;&])bonebase(\s|$)", line.text)]


DOC_LINES = _doc_lines()


def test_the_guides_have_commands_to_check():
    docs = {line.doc for line in DOC_LINES}
    assert {"docs/stewards.md", "docs/operators.md", "docs/mlops.md"} <= docs
    assert len(DOC_LINES) >= 40


@pytest.mark.parametrize("line", DOC_LINES, ids=[line.where for line in DOC_LINES])
def test_every_guide_command_exists(root, line):
    problems = check_shell_line(root, line.text)
    assert not problems, f"{line.where}: {line.text}\n  " + "\n  ".join(problems)


def test_every_make_target_exists():
    targets = makefile_targets()
    assert {"demo", "test", "lint"} <= targets
    mentions = [m for doc in DOCS
                for m in make_mentions(doc.read_text(encoding="utf-8"),
                                       doc.relative_to(ROOT).as_posix())]
    assert mentions, "no `make X` found: the README's two commands should be among them"
    missing = [f"{where}: make {t}" for where, t in mentions if t not in targets]
    assert not missing, "not Makefile targets:\n" + "\n".join(missing)


def test_every_relative_link_of_the_guides_exists():
    broken = []
    for doc in (ROOT / "docs").glob("*.md"):
        for number, raw in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", raw):
                if "://" not in target and not (doc.parent / target).exists():
                    broken.append(f"docs/{doc.name}:{number}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# The checker itself: a wrong command must fail, with the file and line.
SAMPLE = """\
Intro.

```bash
bonebase site add HX --name "Hospital X"
BONEBASE_ENV=production bonebase init    # comment --nope
bonebase quarantine list --site HX | head
bonebase dataset list | show N
bonebase models server status | start | stop
bonebase submitt PATH --site HX
bonebase submit PATH --sight HX
bonebase site show HX EXTRA
bonebase db downgrade \\
    base --yes --force
make demo && make nonsense
```
"""


def test_checker_accepts_real_commands_and_names_the_wrong_ones(root):
    lines = shell_lines(SAMPLE, "docs/sample.md")
    found = {line.where: check_shell_line(root, line.text) for line in lines}
    assert all(not found[f"docs/sample.md:{n}"] for n in (4, 5, 6, 7, 8))
    assert "`bonebase submitt` is not a command" in found["docs/sample.md:9"][0]
    assert "has no option --sight" in found["docs/sample.md:10"][0]
    assert "takes 1 argument(s), the line gives 2" in found["docs/sample.md:11"][0]
    assert "has no option --force" in found["docs/sample.md:12"][0]  # a continued line
    assert ("docs/sample.md:14", "nonsense") in make_mentions(SAMPLE, "docs/sample.md")
    assert "nonsense" not in makefile_targets()
