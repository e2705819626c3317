"""Reader studies in the database: creation, the crossover design, sessions, answers, results."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bonebase.errors import InputError, NotFoundError
from bonebase.readerstudy import store
from bonebase.readerstudy.create import create_study
from bonebase.readerstudy.design import first_arms, reading_order
from bonebase.readerstudy.results import export_csv, results, study_threshold
from tests.readerstudy.world import OUTSIDER, READERS


@pytest.fixture(scope="module")
def conn(world):
    from bonebase.db.engine import connect

    with connect(world["url"]) as c:
        yield c


def _create(conn, world, name, **kw):
    args = dict(dataset_version=1, split="test", task="benign_vs_malignant",
                model_id=world["model_id"], readers=list(READERS), washout_days=0, seed=7,
                max_cases=12, actor="test")
    study = create_study(conn, world["store"], name=name, **{**args, **kw})
    conn.commit()
    return study


@pytest.fixture(scope="module")
def study(conn, world):
    return _create(conn, world, "unit-study")


def _uid(conn, name):
    return conn.execute("SELECT id FROM users WHERE username = %s", (name,)).fetchone()["id"]


def test_design_orders_are_per_reader_and_session_and_reproducible():
    labels = [f"case-{k:02d}" for k in range(1, 13)]
    a1 = reading_order(labels, seed=7, reader="rina", session=1)
    assert a1 == reading_order(list(reversed(labels)), seed=7, reader="rina", session=1)
    assert sorted(a1) == labels
    others = [reading_order(labels, seed=7, reader="rina", session=2),
              reading_order(labels, seed=7, reader="remo", session=1),
              reading_order(labels, seed=8, reader="rina", session=1)]
    assert all(o != a1 for o in others)
    arms = first_arms(["a", "b", "c", "d"], seed=3)
    assert sorted(arms.values()) == ["aided", "aided", "unaided", "unaided"]
    assert arms == first_arms(["a", "b", "c", "d"], seed=3)


def test_study_stores_cases_sessions_and_the_seeded_order(conn, study):
    cases = store.study_cases(conn, study["id"])
    assert len(cases) == 12 and {c["truth"] for c in cases} == {0, 1}
    labels = [c["label"] for c in cases]
    arms = {r["reader"]: r["first_arm"] for r in store.study_readers(conn, study["id"])}
    assert sorted(arms.values()) == ["aided", "unaided"]  # crossover: one of each
    for reader in READERS:
        for number in (1, 2):
            got = [r["label"] for r in conn.execute(
                "SELECT sc.label FROM reader_order o JOIN reader_sessions se ON se.id ="
                " o.session_id JOIN reader_study_cases sc ON sc.id = o.study_case_id"
                " WHERE se.study_id = %s AND se.user_id = %s AND se.number = %s"
                " ORDER BY o.position", (study["id"], _uid(conn, reader), number))]
            assert got == reading_order(labels, seed=7, reader=reader, session=number)


def test_creation_refuses_bad_input(conn, world, study):
    with pytest.raises(InputError, match="exists"):
        _create(conn, world, "unit-study")
    with pytest.raises(NotFoundError, match="bonebase users add nobody --role reader"):
        _create(conn, world, "x1", readers=["rina", "nobody"])
    with pytest.raises(InputError, match="role reader"):
        _create(conn, world, "x2", readers=["rina", "ada"])
    with pytest.raises(InputError, match="trained for benign_vs_malignant"):
        _create(conn, world, "x3", task="os_vs_gct")
    with pytest.raises(InputError, match="not a two-class task"):
        _create(conn, world, "x4", task="normal_benign_malignant")
    conn.rollback()


def test_sessions_refuse_outsiders_and_wait_for_the_washout(conn, world):
    s = _create(conn, world, "washout-study", washout_days=28, max_cases=6)
    with pytest.raises(store.Refused, match="not a reader"):
        store.open_session(conn, study="washout-study", user_id=_uid(conn, OUTSIDER), number=1)
    rina = _uid(conn, "rina")
    with pytest.raises(store.Refused, match="28 days after you finish session 1"):
        store.open_session(conn, study="washout-study", user_id=rina, number=2)
    one = store.open_session(conn, study=s["name"], user_id=rina, number=1)
    for position in range(1, 7):
        store.case_at(conn, one, position, actor="rina")
        store.answer(conn, one, position, score=50, diagnosis=None, confidence=None,
                     seconds=1.0, actor="rina")
    conn.commit()
    with pytest.raises(store.Refused, match=r"opens on \d{4}-\d\d-\d\d .*28-day washout") as e:
        store.open_session(conn, study=s["name"], user_id=rina, number=2)
    assert e.value.status == 403
    opens = conn.execute("SELECT opens_at, now() AS now FROM reader_sessions WHERE study_id = %s"
                         " AND user_id = %s AND number = 2", (s["id"], rina)).fetchone()
    assert timedelta(days=27) < opens["opens_at"] - opens["now"] <= timedelta(days=28)
    assert store.open_session(conn, study=s["name"], user_id=rina, number=2,
                              now=opens["opens_at"])["arm"] != one["arm"]


def test_answers_are_checked_once_and_audited(conn, study):
    session = store.open_session(conn, study=study["name"], user_id=_uid(conn, "remo"), number=1)
    with pytest.raises(store.Refused, match="outside 0-100"):
        store.answer(conn, session, 1, score=101, diagnosis=None, confidence=None, seconds=1,
                     actor="remo")
    store.answer(conn, session, 1, score=30, diagnosis=None, confidence=3, seconds=2.5,
                 actor="remo")
    with pytest.raises(store.Refused, match="answered already .score 30.") as e:
        store.answer(conn, session, 1, score=90, diagnosis=None, confidence=None, seconds=1,
                     actor="remo")
    assert e.value.status == 409
    conn.commit()
    scores = [a["score"] for a in store.answers(conn, study["id"]) if a["reader"] == "remo"]
    assert scores == [30]
    actions = [r["action"] for r in conn.execute(
        "SELECT action FROM audit_events WHERE entity = 'reader_study' AND entity_id = %s"
        " AND actor = 'remo'", (study["name"],))]
    assert actions == ["reader_study.answer"]


def test_corrections_when_the_study_allows_them(conn, world):
    s = _create(conn, world, "corrections-study", allow_corrections=True, max_cases=4)
    session = store.open_session(conn, study=s["name"], user_id=_uid(conn, "rina"), number=1)
    store.answer(conn, session, 1, score=20, diagnosis=None, confidence=None, seconds=1,
                 actor="rina")
    store.answer(conn, session, 1, score=80, diagnosis=None, confidence=None, seconds=1,
                 actor="rina")
    conn.commit()
    [row] = store.answers(conn, s["id"])
    assert (row["score"], row["corrections"]) == (80, 1)
    details = conn.execute("SELECT details FROM audit_events WHERE action ="
                           " 'reader_study.correct' AND entity_id = %s", (s["name"],)).fetchone()
    assert details["details"]["previous_score"] == 20


def test_results_on_complete_readers_match_the_export(conn, world, tmp_path):
    import random

    from bonebase.stats.mrmc import analyze_csv

    s = _create(conn, world, "results-study", max_cases=10, seed=3)
    rng = random.Random(5)
    out = results(conn, s["name"])
    assert out["analysis"] is None and out["excluded_readers"] == list(sorted(READERS))
    for reader in READERS:
        for number in (1, 2):
            sess = store.open_session(conn, study=s["name"], user_id=_uid(conn, reader),
                                      number=number)
            for position in range(1, 11):
                store.answer(conn, sess, position, score=rng.randint(0, 100), diagnosis=None,
                             confidence=None, seconds=rng.uniform(2, 9), actor=reader)
    conn.commit()
    out = results(conn, s["name"])
    assert out["complete_readers"] == sorted(READERS) and not out["excluded_readers"]
    path = tmp_path / "scores.csv"
    path.write_text(export_csv(conn, store.get_study(conn, s["name"])))
    again = analyze_csv(path, threshold=study_threshold(s))
    assert again["per_reader_auc"] == out["analysis"]["per_reader_auc"]
    assert again["rrrc"] == out["analysis"]["rrrc"]
    assert again["operating_point"] == out["analysis"]["operating_point"]
    # The model's stored answers outlive its registry row.
    conn.execute("DELETE FROM models WHERE id = %s", (world["model_id"],))
    assert results(conn, s["name"])["model"] == out["model"]
    conn.rollback()
