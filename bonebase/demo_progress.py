"""What `bonebase demo` is doing and how long each part took.

A rich progress display on stderr when stderr is a terminal (stage, epoch n of N, time left),
plain lines through the demo's ``say`` otherwise (logs, CI, tests). Every stage's duration is
kept for the summary. Training runs inside ``dvc repro`` under the retrain flow, which streams
the pipeline's output into the Prefect task's log: :meth:`DemoProgress.watch_training` reads the
per-epoch JSON lines from there and keeps the pipeline's own lines (DVC's chatter, its hint to
``git add dvc.lock`` in a project that is not the user's repository) off the console.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

#: The retrain flow's task that runs `dvc repro` and logs every line of its output.
PIPELINE_TASK = "train-and-evaluate"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class DemoProgress:
    """Stages, training epochs and their durations; ``live`` (default: stderr is a terminal)
    draws a rich display, else each event is one line through ``say``."""

    def __init__(self, say: Callable[[str], None], *, live: bool | None = None,
                 console: Console | None = None) -> None:  # fmt: skip
        self.say = say
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.durations: list[tuple[str, float]] = []
        self._bar: Progress | None = None
        self._stage: int | None = None
        self._epochs: dict[str, float] = {}

    def __enter__(self) -> DemoProgress:
        if self.live:
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                console=self.console, transient=True,
            )  # fmt: skip
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def print(self, line: str) -> None:
        """A line of the story (above the live display, which stays at the bottom)."""
        self.say(line)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """One part of the story: announced, timed, its duration kept for the summary."""
        self.say(f"== {name}")
        began = time.perf_counter()
        if self._bar is not None:
            self._stage = self._bar.add_task(name, total=None, left="")
        try:
            yield
        finally:
            seconds = time.perf_counter() - began
            self.durations.append((name, seconds))
            if self._bar is not None and self._stage is not None:
                self._bar.remove_task(self._stage)
                self._stage = None
            self.say(f"   ({duration(seconds)})")

    def files(self, what: str, done: int, total: int) -> None:
        """Ingest progress (files, cases): the live display only; plain output stays short."""
        if self._bar is not None and self._stage is not None:
            self._bar.update(self._stage, completed=done, total=total, left=what)

    def epoch(self, entry: dict, total: int) -> None:
        """One training epoch finished (``entry`` is the JSON line pipelines/train.py prints)."""
        n = int(entry.get("epoch", 0))  # pipelines/train.py counts from 1
        self._epochs[str(n)] = float(entry.get("seconds") or 0.0)
        mean = sum(self._epochs.values()) / len(self._epochs)
        left = max(total - n, 0) * mean
        auc = entry.get("val_auc")
        auc_text = "–" if auc is None else f"{auc:.3f}"
        if self._bar is not None and self._stage is not None:
            self._bar.update(self._stage, completed=n, total=total,
                             left=f"epoch {n}/{total}, val AUC {auc_text}, "
                                  f"about {duration(left)} left")  # fmt: skip
            self._bar.refresh()
            return
        self.say(f"   epoch {n}/{total}: {duration(mean)} per epoch, val AUC {auc_text}"
                 + (f", about {duration(left)} left" if n < total else ""))  # fmt: skip

    @contextmanager
    def watch_training(self, epochs: int) -> Iterator[None]:
        """While the retrain flow runs here: epochs from its pipeline task's log into this
        display, and that task's lines (the pipeline's raw output) off the console."""
        self._epochs = {}
        watcher = _EpochLines(lambda entry: self.epoch(entry, epochs))
        runs = logging.getLogger("prefect.task_runs")
        runs.addHandler(watcher)
        consoles = [h for h in logging.getLogger().handlers if _is_console(h)]
        for handler in consoles:
            handler.addFilter(_not_pipeline_output)
        try:
            yield
        finally:
            runs.removeHandler(watcher)
            for handler in consoles:
                handler.removeFilter(_not_pipeline_output)


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


def _not_pipeline_output(record: logging.LogRecord) -> bool:
    """False for a line of `dvc repro`'s output, which the retrain flow logs (it still reaches
    Prefect's log of the run)."""
    return getattr(record, "task_name", None) != PIPELINE_TASK


class _EpochLines(logging.Handler):
    """Calls ``on_epoch`` with each per-epoch JSON line the pipeline task logs."""

    def __init__(self, on_epoch: Callable[[dict], None]) -> None:
        super().__init__(level=logging.INFO)
        self.on_epoch = on_epoch

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "task_name", None) != PIPELINE_TASK:
            return
        message = record.getMessage()
        if not message.startswith('{"epoch"'):
            return
        try:
            entry = json.loads(message)
        except ValueError:
            return
        self.on_epoch(entry)
