"""The machinery of the guide walk (tests/e2e/test_guides.py holds the table).

An `Entry` names one shell line of a guide by its doc and its text (as tests/doc_shell.py joins
it, comments included) and says what the walk does with it; a `Step` is something the walk does
between guide lines (a file a reader would have, a second hospital's submission). `Walk` runs
them in order: every command is ``bash -c`` in a scratch project, as a real process, with the
walk's environment, and its exit status is asserted.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.doc_shell import Line

# What the walk does with a line.
RUN = "run"  # a foreground command: exit status asserted (and a fact of its output)
EXPORT = "export"  # run by bash; the variables it exports go into the walk's environment
SERVE = "serve"  # a server started in the background, probed until it answers
SAME = "same"  # the same command as another entry, which runs it
NOT_RUN = "not run"  # impossible here: the reason says why (the test reports these)
NOT_A_COMMAND = "not a command"  # a folder tree, a CSV sample, a comment
ELSEWHERE = "run elsewhere"  # run by another test or CI job, named in the note

KINDS = (RUN, EXPORT, SERVE, SAME, NOT_RUN, NOT_A_COMMAND, ELSEWHERE)
OUTPUT_TAIL = 3000


@dataclass(frozen=True)
class Entry:
    """What the walk does with one guide line.

    The command run is the line's text with each ``(old, new)`` of ``subs`` replaced (``old``
    must occur in the line; ``new`` may name walk values as ``{name}``), or, for lines that hold
    several commands (``a | b | c`` alternatives), each of ``commands``.
    """

    doc: str
    text: str
    how: str
    note: str = ""
    subs: tuple[tuple[str, str], ...] = ()
    commands: tuple[str | tuple[str, str], ...] = ()  # a command, or (command, its expect)
    rc: int = 0
    expect: str = ""  # a regex (after {name} substitution) the output must contain
    then: Callable[[Walk, str], None] | None = None  # (walk, output): record values, check facts
    probe: Callable[[Walk], bool] | None = None  # SERVE: True once the server answers
    name: str = ""  # SERVE: the name the walk stops it by
    same_as: tuple[str, str] | None = None  # SAME: (doc, text) of the entry that runs it
    # A program the line needs that a machine may lack, and what the walk does instead (then
    # reported as not run): (program, a function of the walk returning what `then` checks).
    fallback: tuple[str, Callable[[Walk], str]] | None = None

    def __post_init__(self):
        assert self.how in KINDS, self.how
        if self.how in (NOT_RUN, NOT_A_COMMAND, ELSEWHERE, SAME):
            assert self.note, f"{self.doc}: `{self.text}` ({self.how}) needs a note saying why"
        if self.how == SAME:
            assert self.same_as, f"{self.doc}: `{self.text}`: same as which entry?"
        if self.how == SERVE:
            assert self.probe and self.name, f"{self.doc}: `{self.text}`: serve needs probe + name"
        for old, _ in self.subs:
            assert old in self.text, f"{self.doc}: `{old}` is not in the line `{self.text}`"

    @property
    def key(self) -> tuple[str, str]:
        return self.doc, self.text

    @property
    def runs(self) -> bool:
        return self.how in (RUN, EXPORT, SERVE)

    def shell(self, values) -> list[tuple[str, str]]:
        """(command, regex its output must contain) for each command this entry runs, with the
        walk's values filled in."""
        if self.commands:
            pairs = [(c, self.expect) if isinstance(c, str) else c for c in self.commands]
            return [(c.format_map(values), e) for c, e in pairs]
        text = self.text
        for old, new in self.subs:
            text = text.replace(old, new.format_map(values))
        return [(text, self.expect)]


class _Names(dict):
    """Leaves ``{name}`` as it is: commands compared before the walk knows the values."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Step:
    """Something the walk does that is not a guide line (says why in ``what``)."""

    what: str
    do: Callable[[Walk], None]


# ---------------------------------------------------------------------------------------------
def coverage_problems(table: list[Entry | Step], lines: list[Line]) -> list[str]:
    """Guide lines without an entry, entries whose line is gone (stale), and SAME entries whose
    commands differ from the entry they point at."""
    entries = [e for e in table if isinstance(e, Entry)]
    have, want = Counter(e.key for e in entries), Counter((ln.doc, ln.text) for ln in lines)
    where = {(ln.doc, ln.text): ln.where for ln in lines}
    problems = []
    for key, n in want.items():
        if have[key] < n:
            problems.append(f"{where[key]}: `{key[1]}` has no entry in the walk's table "
                            f"({n} line(s) in the guide, {have[key]} entr(y/ies))")
    for key, n in have.items():
        if want[key] < n:
            problems.append(f"stale entry: {key[0]} has {want[key]} line(s) `{key[1]}`, the table "
                            f"{n} entr(y/ies); change the entry with the guide")
    by_key = {e.key: e for e in entries}
    for e in entries:
        if e.how != SAME:
            continue
        other = by_key.get(e.same_as)
        if other is None or not other.runs:
            problems.append(f"{e.doc}: `{e.text}` is the same as {e.same_as}, which does not run")
        elif ([_command(c) for c, _ in e.shell(_Names())]
              != [_command(c) for c, _ in other.shell(_Names())]):
            problems.append(f"{e.doc}: `{e.text}` is not the same command as `{other.text}`")
    return problems


def _command(text: str) -> str:
    """A line without its comment, whitespace normalised."""
    return " ".join(shlex.split(text, comments=True))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, **kwargs) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5, **kwargs).status_code == 200
    except httpx.HTTPError:
        return False


def locate(table: list[Entry | Step], lines: list[Line]) -> dict[int, str]:
    """doc:line of each entry (the n-th entry of a text is its n-th line in the doc)."""
    queue: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        queue.setdefault((line.doc, line.text), []).append(line.where)
    return {id(e): queue[e.key].pop(0) for e in table if isinstance(e, Entry)}


def url_of(conninfo: str) -> str:
    """A postgresql:// URL of a conninfo string (the `export DATABASE_URL=` line takes a URL)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    if "://" in conninfo:
        return conninfo
    p = conninfo_to_dict(conninfo)
    auth = quote(p.get("user", "postgres")) + (f":{quote(p['password'])}" if p.get("password")
                                                else "")
    host = p.get("host", "")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{p['dbname']}?host={host}" + (
            f"&port={p['port']}" if p.get("port") else "")
    return f"postgresql://{auth}@{host or 'localhost'}:{p.get('port', 5432)}/{p['dbname']}"


def scratch_env(root: Path, values: dict) -> dict[str, str]:
    """The walk's environment: this process's, without any bonebase, Prefect, BentoML or AWS
    setting, plus scratch homes under ``root`` and the Prefect server's port in ``values``."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("BONEBASE_", "PREFECT_", "BENTOML_", "AWS_"))
                 and k not in ("DATABASE_URL", "TOKEN")}  # fmt: skip
    empty = root / "aws-config"
    empty.write_text("")  # aiobotocore (dvc-s3) refuses os.devnull as AWS_CONFIG_FILE
    return {
        **inherited,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "COLUMNS": "200",  # rich wraps at 80 columns without a terminal
        "BONEBASE_HOME": values["home"],
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_API_PORT": str(values["prefect_port"]),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# ---------------------------------------------------------------------------------------------
@dataclass
class Walk:
    """The walk's state: environment, working folder (a project checkout), values found on the
    way (ids, tags, ports), background servers, and what each entry cost."""

    env: dict[str, str]
    cwd: Path
    logs: Path
    values: dict[str, object] = field(default_factory=dict)
    background: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    _n: int = 0  # commands run: their outputs are logs/NNN.log

    def sh(self, cmd: str, *, rc: int = 0, expect: str = "", where: str = "",
           timeout: float = 600) -> str:
        """Run ``cmd`` with bash; assert its exit status (and that stdout + stderr match
        ``expect``); its stdout."""
        proc = subprocess.run(["bash", "-c", cmd], cwd=self.cwd, env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        self._n += 1
        (self.logs / f"{self._n:03d}.log").write_text(f"{where}\n$ {cmd}\n{out}")
        assert proc.returncode == rc, (f"{where}: `{cmd}` exited {proc.returncode}, expected "
                                       f"{rc}\n{out[-OUTPUT_TAIL:]}")
        if expect:
            pattern = expect.format(**self.values)
            assert re.search(pattern, out), (f"{where}: `{cmd}`: output lacks /{pattern}/\n"
                                             f"{out[-OUTPUT_TAIL:]}")
        return proc.stdout

    def export(self, cmd: str, *, where: str = "") -> None:
        """Run an `export …` line with bash and keep the variables it changed."""
        out = subprocess.run(["bash", "-c", f"{cmd}\nenv -0"], cwd=self.cwd, env=self.env,
                             capture_output=True, check=True).stdout.decode()
        after = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
        names = [w.split("=", 1)[0] for w in shlex.split(cmd, comments=True)[1:] if "=" in w]
        missing = [n for n in names if not after.get(n)]
        assert names and not missing, f"{where}: `{cmd}` did not export {missing or 'anything'}"
        self.env.update({n: after[n] for n in names})

    def start(self, name: str, cmd: str, probe: Callable[[Walk], bool], *, where: str = "",
              wait_s: float = 300) -> None:
        """Start ``cmd`` in its own process group; return once ``probe`` says it answers."""
        log_path = self.logs / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(["bash", "-c", cmd], cwd=self.cwd, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.background[name] = proc
        deadline = time.monotonic() + wait_s
        while not probe(self):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop(name)
                raise AssertionError(f"{where}: `{cmd}` did not come up (exit {proc.returncode})"
                                     f"\n{log_path.read_text(errors='replace')[-OUTPUT_TAIL:]}")
            time.sleep(0.5)

    def stop(self, name: str) -> None:
        """SIGTERM to the server's process group (its children too), SIGKILL after 30 s."""
        proc = self.background.pop(name, None)
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:  # the whole group is gone
                break
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for name in list(self.background):
            self.stop(name)

    # -----------------------------------------------------------------------------------------
    def run(self, item: Entry | Step, where: str) -> None:
        began = time.monotonic()
        if isinstance(item, Step):
            item.do(self)
            self.timings.append((f"step: {item.what}", time.monotonic() - began))
            return
        if item.how == NOT_RUN:
            self.not_run.append(f"{where}: `{item.text}`: {item.note}")
            if item.then is not None:
                item.then(self, "")
        if not item.runs:
            return
        if item.fallback and shutil.which(item.fallback[0], path=self.env["PATH"]) is None:
            self.not_run.append(f"{where}: `{item.text}`: no {item.fallback[0]} here; the same "
                                "request was sent from Python")
            out = item.fallback[1](self)
            if item.then is not None:
                item.then(self, out)
            self.timings.append((where, time.monotonic() - began))
            return
        out = ""
        for cmd, expect in item.shell(self.values):
            if item.how == EXPORT:
                self.export(cmd, where=where)
            elif item.how == SERVE:
                self.start(item.name, cmd, item.probe, where=where)
            else:
                out = self.sh(cmd, rc=item.rc, expect=expect, where=where)
        if item.then is not None:
            item.then(self, out)
        self.timings.append((where, time.monotonic() - began))
