"""The demo's progress display (#17 point 11): stages with durations, epochs with time left, and
the pipeline's raw output (DVC's `git add dvc.lock` hint, the per-epoch JSON) off the console."""

from __future__ import annotations

import io
import json
import logging

from rich.console import Console

from bonebase.demo_progress import PIPELINE_TASK, DemoProgress, duration


def test_durations_read_as_people_say_them():
    assert [duration(s) for s in (0.4, 42, 65, 3599, 3720)] == [
        "0 s", "42 s", "1 min 05 s", "59 min 59 s", "1 h 02 min"]  # fmt: skip


def test_plain_lines_give_each_stage_its_duration_and_each_epoch_the_time_left():
    lines: list[str] = []
    with DemoProgress(lines.append, live=False) as show:
        with show.stage("training"):
            show.epoch({"epoch": 1, "seconds": 30.0, "val_auc": 0.55}, total=4)
            show.epoch({"epoch": 2, "seconds": 50.0, "val_auc": None}, total=4)
            show.epoch({"epoch": 4, "seconds": 40.0, "val_auc": 0.61}, total=4)
    assert lines[0] == "== training"
    assert lines[1] == "   epoch 1/4: 30 s per epoch, val AUC 0.550, about 1 min 30 s left"
    assert lines[2] == "   epoch 2/4: 40 s per epoch, val AUC –, about 1 min 20 s left"
    assert lines[3] == "   epoch 4/4: 40 s per epoch, val AUC 0.610"  # nothing left to say
    assert lines[4].startswith("   (") and lines[4].endswith(" s)")
    ((name, seconds),) = show.durations
    assert name == "training" and seconds >= 0


def test_a_failed_stage_still_gets_its_duration():
    lines: list[str] = []
    show = DemoProgress(lines.append, live=False)
    try:
        with show.stage("ingesting"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert [name for name, _ in show.durations] == ["ingesting"]


def test_the_live_display_draws_on_its_console_not_in_the_story():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    lines: list[str] = []
    with DemoProgress(lines.append, live=True, console=console) as show:
        assert show.live
        with show.stage("training"):
            show.files("files", 3, 10)
            show.epoch({"epoch": 1, "seconds": 12.0, "val_auc": 0.5}, total=3)
    assert lines[0] == "== training" and not [line for line in lines if "epoch" in line]
    assert "epoch 1/3, val AUC 0.500, about 24 s left" in screen.getvalue()


def _record(message: str, task_name: str | None) -> logging.LogRecord:
    record = logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, message, None, None)
    if task_name:
        record.task_name = task_name
    return record


def test_watching_training_reads_epochs_and_keeps_the_pipelines_lines_off_the_console():
    """While the retrain flow runs: the per-epoch JSON lines of its pipeline task feed the
    display; that task's lines (DVC's hint among them) reach no console handler; other tasks'
    lines do; afterwards everything reaches the console again."""
    seen = io.StringIO()
    console = logging.StreamHandler(seen)
    root, runs = logging.getLogger(), logging.getLogger("prefect.task_runs")
    root.addHandler(console)
    lines: list[str] = []
    show = DemoProgress(lines.append, live=False)
    epoch = json.dumps({"epoch": 1, "seconds": 3.0, "val_auc": 0.5})
    hint = "To track the changes with git, run:\tgit add dvc.lock"
    try:
        with show.watch_training(epochs=2):
            for message, task in ((epoch, PIPELINE_TASK), (hint, PIPELINE_TASK),
                                  ("registered model 3", "register-and-gate")):  # fmt: skip
                runs.handle(_record(message, task))
        runs.handle(_record("after the run", PIPELINE_TASK))
    finally:
        root.removeHandler(console)
    printed = seen.getvalue()
    assert "git add" not in printed and '{"epoch"' not in printed
    assert "registered model 3" in printed and "after the run" in printed
    assert lines == ["   epoch 1/2: 3 s per epoch, val AUC 0.500, about 3 s left"]
    assert not [h for h in runs.handlers if type(h).__name__ == "_EpochLines"]
