"""Web database latency with 100,000 synthetic cases in PostgreSQL.

    DATABASE_URL=postgresql://… python benchmarks/web.py [--cases 100000] [--requests 300]

Creates a scratch database on the server of DATABASE_URL (dropped at the end), migrates it and
fills it with COPY: 12 sites, one patient per case, ``--cases`` cases drawn from the vocabularies
(diagnosis, behaviour, location, sex, age, modalities), and a study with three instance rows for
2,000 of them (rows only: the case page is timed, not the image rendering, which is per picture
and the same pixel code as the export). The app runs under uvicorn in this process and is asked
over real HTTP (httpx, keep-alive) by a signed-in user; the same queries are timed bare
(psycopg, same process, same pool size). Prints p50/p99 per page and the ratio page/bare-SQL at
p50. The goal: p99 under 50 ms for a filtered list page.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402

from bonebase.vocab import DIAGNOSES  # noqa: E402
from web.filters import LOCATIONS, parse_filters  # noqa: E402

SECRET = b"benchmark-secret-0123456789abcdef"
FILTERED = [  # what a clinician or researcher typically asks for
    "site=S03&behaviour=malignant",
    "diagnosis=osteosarcoma&age_min=10&age_max=25",
    "location=distal_femur&sex=F",
    "diagnosis=giant_cell_tumour&location=proximal_tibia",
    "site=S07&modality=CT",
    "behaviour=benign&age_min=40&age_max=60&sex=M",
]


def _fill(conn: psycopg.Connection, n: int, rng: random.Random) -> list[int]:
    sites = [f"S{i:02d}" for i in range(12)]
    with conn.cursor() as cur:
        with cur.copy("COPY sites (code, name) FROM STDIN") as cp:
            for code in sites:
                cp.write_row((code, f"Hospital {code}"))
        dx = list(DIAGNOSES.values())
        with cur.copy("COPY patients (id, site_id, pseudonym, sex) FROM STDIN") as pp:
            rows = []
            for i in range(1, n + 1):
                site = rng.randrange(1, len(sites) + 1)
                sex = rng.choice("MF")
                pp.write_row((i, site, f"p{i:07d}", sex))
                rows.append((site, sex))
        with cur.copy("COPY cases (id, site_id, patient_id, case_pseudonym, age, sex, location_code,"
                      " diagnosis_code, behaviour, modalities, pathology_confirmed, row_hash)"
                      " FROM STDIN") as cp:
            for i, (site, sex) in enumerate(rows, 1):
                d = rng.choice(dx)
                mods = "XR" if rng.random() < 0.7 else rng.choice(["CT;XR", "MR;XR", "CT;MR;XR"])
                cp.write_row((i, site, i, f"c{i:07d}", rng.randint(3, 85), sex,
                              rng.choice(LOCATIONS), d.code, d.behaviour.value, mods, True,
                              f"h{i}"))
        viewed = rng.sample(range(1, n + 1), 2000)
        with cur.copy("COPY studies (id, case_id, study_uid, study_date) FROM STDIN") as cp:
            for j, case in enumerate(viewed, 1):
                cp.write_row((j, case, f"2.25.1.{j}", "2020-01-01"))
        with cur.copy("COPY series (id, study_id, series_uid, modality) FROM STDIN") as cp:
            for j in range(1, len(viewed) + 1):
                cp.write_row((j, j, f"2.25.2.{j}", "DX"))
        with cur.copy("COPY instances (series_id, sop_instance_uid, sha256, source_sha256,"
                      " object_key, size_bytes, modality, instance_number) FROM STDIN") as cp:
            for j in range(1, len(viewed) + 1):
                for k in range(3):
                    h = f"{j:032x}{k:032x}"
                    cp.write_row((j, f"2.25.3.{j}.{k}", h, h[::-1], f"curated/{h}.dcm", 1, "DX",
                                  k + 1))
        for table in ("patients", "cases", "studies", "series"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT max(id) FROM {table}))")
    conn.commit()
    conn.execute("ANALYZE")
    return viewed


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000


def _time(fn, n: int) -> list[float]:
    for _ in range(5):  # warm caches and the pool
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    server = os.environ.get("DATABASE_URL")
    if not server:
        sys.exit("set DATABASE_URL to a PostgreSQL server where a scratch database may be made")
    import uvicorn

    from bonebase.db.engine import connect
    from bonebase.db.migrate import upgrade
    from bonebase.db.users import add_user
    from bonebase.storage import LocalStore
    from web import queries
    from web.app import create_app
    from web.settings import WebSettings

    name = f"bonebase_bench_web_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(**{**conninfo_to_dict(server), "dbname": name})
    rng = random.Random(args.seed)
    try:
        upgrade(url)
        t0 = time.perf_counter()
        with connect(url) as conn:
            viewed = _fill(conn, args.cases, rng)
            add_user(conn, username="bench", role="researcher", password="benchmark-password")
            conn.commit()
        print(f"filled {args.cases:,} cases in {time.perf_counter() - t0:.1f} s")

        app = create_app(db_url=url, store=LocalStore(Path(tempfile.mkdtemp())), secret=SECRET,
                         web=WebSettings(), pool_size=4)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                            access_log=False))
        threading.Thread(target=srv.run, daemon=True).start()
        while not srv.started:
            time.sleep(0.05)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        token = re.search(r'name="csrf_token" value="(\w+)"', http.get("/login").text).group(1)
        http.post("/login", data={"username": "bench", "password": "benchmark-password",
                                  "csrf_token": token})
        assert "bench (researcher)" in http.get("/cases").text

        def page(path):
            def go():
                r = http.get(path)
                assert r.status_code == 200, (path, r.status_code)
            return go

        cycle = iter(range(10**9))

        def filtered_page():
            page(f"/cases?{FILTERED[next(cycle) % len(FILTERED)]}")()

        def case_page():
            page(f"/cases/{rng.choice(viewed)}")()

        deep = f"/cases?after={args.cases // 2}"
        pool = psycopg.connect(url, autocommit=True)
        from psycopg.rows import dict_row

        pool.row_factory = dict_row
        parsed = [parse_filters(dict(httpx.QueryParams(q)))[0] for q in FILTERED]
        sql_cycle = iter(range(10**9))

        def sql_list(f, after=None):
            queries.list_cases(pool, f, after=after, limit=50)
            queries.count_cases(pool, f)

        def sql_filtered():
            sql_list(parsed[next(sql_cycle) % len(parsed)])

        def sql_case():
            queries.get_case(pool, rng.choice(viewed))

        empty = parse_filters({})[0]
        n = args.requests
        rows = [
            ("case list, unfiltered", page("/cases"), lambda: sql_list(empty)),
            ("case list, filtered", filtered_page, sql_filtered),
            ("case list, page 1000", page(deep), lambda: sql_list(empty, args.cases // 2)),
            ("case view", case_page, sql_case),
        ]
        print(f"{'page':<24}{'p50 ms':>9}{'p99 ms':>9}{'SQL p50':>9}{'SQL p99':>9}{'ratio':>7}")
        for label, web_fn, sql_fn in rows:
            w, q = _time(web_fn, n), _time(sql_fn, n)
            print(f"{label:<24}{_pct(w, .5):9.2f}{_pct(w, .99):9.2f}{_pct(q, .5):9.2f}"
                  f"{_pct(q, .99):9.2f}{_pct(w, .5) / _pct(q, .5):7.1f}")
        print("filtered queries one by one (bare SQL: page + capped count):")
        for q, f in zip(FILTERED, parsed, strict=True):
            t = _time(lambda f=f: sql_list(f), max(20, n // 10))
            print(f"  {q:<48} p50 {_pct(t, .5):7.2f} ms  matches {queries.count_cases(pool, f):,}")
        srv.should_exit = True
        pool.close()
        http.close()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
