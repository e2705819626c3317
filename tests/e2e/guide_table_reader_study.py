"""The walk's table of docs/reader-study.md: every shell line, run as a real `bonebase` process
against the reader-study world of tests/readerstudy (a dataset version, a registered model), by
tests/readerstudy/test_guide.py. Between the lines, the two readers read both arms through the
same library calls as the reading page (the browser does it in tests/web/test_reader_browser.py)."""

from __future__ import annotations

import json
import random
import re

from tests.e2e.guide_walk import RUN, Entry, Step

DOC = "docs/reader-study.md"
READERS = ("ines", "omar")


def read_both_arms(walk) -> None:
    """Each reader answers every case of both sessions (random scores), in reading order."""
    from bonebase.db.engine import connect
    from bonebase.readerstudy import store

    with connect(walk.env["DATABASE_URL"]) as conn:
        for reader in READERS:
            uid = conn.execute("SELECT id FROM users WHERE username = %s",
                               (reader,)).fetchone()["id"]
            rng = random.Random(reader)
            for number in (1, 2):
                if number == 2:  # the guide's 28-day washout, passed
                    conn.execute("UPDATE reader_sessions SET opens_at = now() - interval '1 s'"
                                 " WHERE user_id = %s AND number = 2", (uid,))
                session = store.open_session(conn, study="pilot", user_id=uid, number=number)
                _, total, _ = store.progress(conn, session["id"])
                for position in range(1, total + 1):
                    store.case_at(conn, session, position, actor=reader)
                    store.answer(conn, session, position, score=rng.randint(0, 100),
                                 diagnosis=None, confidence=None, seconds=rng.uniform(3, 20),
                                 actor=reader)
        conn.commit()


def _second_session_waits(walk) -> None:
    from bonebase.db.engine import connect
    from bonebase.readerstudy import store

    with connect(walk.env["DATABASE_URL"]) as conn:
        uid = conn.execute("SELECT id FROM users WHERE username = 'ines'").fetchone()["id"]
        try:
            store.open_session(conn, study="pilot", user_id=uid, number=2)
        except store.Refused as exc:
            assert "28 days after you finish session 1" in str(exc)
        else:
            raise AssertionError("session 2 opened before session 1 was read")


def _keep_aucs(walk, out: str) -> None:
    result = json.loads(out)
    assert result["complete_readers"] == list(READERS) and result["analysis"], out[:2000]
    walk.values["aucs"] = result["analysis"]["per_reader_auc"]


def _keep_threshold(walk, out: str) -> None:
    walk.values["threshold"] = re.search(r"--threshold ([0-9.]+)", out).group(1)


def _same_numbers(walk, out: str) -> None:
    for reader, arms in walk.values["aucs"].items():
        row = next(line for line in out.splitlines() if line.startswith(reader + " "))
        assert [f"{arms[m]:.4f}" for m in ("aided", "unaided")] == row.split()[1:3], row


TABLE = [
    Entry(DOC, "bonebase users add rina --role reader", RUN, subs=(("rina", "ines"),),
          expect="user ines added .reader."),
    Entry(DOC, "bonebase users add remo --role reader", RUN, subs=(("remo", "omar"),),
          expect="user omar added .reader."),
    Entry(DOC, "bonebase reader-study create pilot --dataset-version 1 --split test --task "
          "benign_vs_malignant --model 1 --readers rina,remo --washout-days 28 --seed 7", RUN,
          subs=(("--model 1", "--model {model}"), ("rina,remo", "ines,omar"),
                ("--seed 7", "--seed 7 --max-cases 8")),  # fewer Grad-CAM maps on a CPU
          expect="reader study pilot: 8 cases"),
    Entry(DOC, "bonebase reader-study list", RUN, expect=r"pilot .*benign_vs_malignant"),
    Step("session 2 is closed until session 1 is read and the washout has passed",
         _second_session_waits),
    Step("the readers read both arms (as the reading page does)", read_both_arms),
    Entry(DOC, "bonebase reader-study results pilot", RUN,
          expect=r"(?s)ines .*aided.*random readers, random cases"),
    Entry(DOC, "bonebase reader-study results pilot --json", RUN, then=_keep_aucs),
    Entry(DOC, "bonebase reader-study export pilot --out scores.csv", RUN,
          expect="scores.csv: 48 scores", then=_keep_threshold),
    Entry(DOC, "bonebase reader-study analyze scores.csv --threshold 50.0", RUN,
          subs=(("50.0", "{threshold}"),), then=_same_numbers),
]
