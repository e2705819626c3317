"""Synthetic consortium: hospitals' submissions of bone tumour radiographs, CT and MR, with faults.

``generate(out)`` writes ``out/sites.json`` and per site ``<CODE>/submission/`` (manifest.csv and
DICOM files in the site's layout), ``<CODE>/faults.json`` (every injected fault) and
``<CODE>/truth.csv`` (per image: case, true diagnosis, lesion bounding box). The output is
byte-for-byte determined by the arguments other than ``workers`` and ``progress``.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bonebase.errors import InputError
from bonebase.synth.burned import write_truth
from bonebase.synth.casegen import ImageRecord, render_chunk
from bonebase.synth.clinical import CaseSpec, plan_cases
from bonebase.synth.faults import FAULT_KINDS, MIN_CASES, plan_faults
from bonebase.synth.output import MANIFEST_COLUMNS, TRUTH_COLUMNS, finish_site
from bonebase.synth.sites import SiteProfile, make_sites

__all__ = ["FAULT_KINDS", "MANIFEST_COLUMNS", "TRUTH_COLUMNS", "SynthSummary", "generate"]

_CHUNK = 4  # cases per pool task: small enough to balance, large enough to amortise pickling


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate`` wrote."""

    out: Path
    sites: tuple[str, ...]
    cases: int  # planned cases, including faulty and orphan ones
    images: int  # DICOM files written (before corruption and duplication)
    bytes: int
    faults: int
    seconds: float


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose a folder path")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(
                f"--out {out}: folder is not empty; choose an empty or new folder "
                "(or pass overwrite=True / --overwrite to replace its content)"
            )
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(
    out: Path,
    *,
    sites: int = 4,
    cases_per_site: int = 100,
    seed: int = 7,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
    burned_in: float = 0.0,
) -> SynthSummary:
    """Write a synthetic consortium of ``sites`` hospitals with ``cases_per_site`` cases each.

    ``workers``: processes for rendering (None: all CPUs; 1: in this process); the output does
    not depend on it. ``progress`` is called with the number of cases just finished.
    ``overwrite`` empties a non-empty ``out`` first.
    ``burned_in`` (0 by default) is the share of radiographs with the patient's name, ID,
    dates and hospital burned into the pixels, the truth in ``<CODE>/burned_in.csv``.
    """
    started = time.perf_counter()
    out = Path(out)
    if not 1 <= sites <= 99:
        raise InputError(f"sites={sites}: expected 1 to 99 sites")
    if cases_per_site < MIN_CASES:
        raise InputError(
            f"cases_per_site={cases_per_site}: at least {MIN_CASES} are needed so "
            "that every fault kind has a case of its own"
        )
    if workers is not None and workers < 1:
        raise InputError(f"workers={workers}: expected a positive number or None")
    _prepare(out, overwrite)
    root = np.random.SeedSequence(seed)
    profile_seq, *site_seqs = root.spawn(sites + 1)
    profiles = make_sites(sites, np.random.default_rng(profile_seq))
    plans: list[tuple[SiteProfile, list[CaseSpec], dict[str, int], np.random.SeedSequence]] = []
    for site, seq in zip(profiles, site_seqs, strict=True):
        plan_seq, fault_seq, finish_seq, cases_seq = seq.spawn(4)
        cases = plan_cases(
            site, cases_per_site, np.random.default_rng(plan_seq), cases_seq.spawn(cases_per_site)
        )
        cases, counts = plan_faults(cases, np.random.default_rng(fault_seq))
        plans.append((site, cases, counts, finish_seq))
    tasks = []
    for site, cases, _, _ in plans:
        todo = [c for c in cases if c.rendered]
        sub = out / site.code / "submission"
        sub.mkdir(parents=True, exist_ok=True)
        tasks += [(site, todo[i : i + _CHUNK], sub, burned_in)
                  for i in range(0, len(todo), _CHUNK)]
    records: dict[str, list[ImageRecord]] = {site.code: [] for site in profiles}
    skipped = sum(len(c) for _, c, _, _ in plans) - sum(len(t[1]) for t in tasks)
    if progress and skipped:
        progress(skipped)  # cases with nothing to render count as done
    n_workers = workers or multiprocessing.cpu_count()
    if n_workers == 1:
        for site, chunk, sub, share in tasks:
            records[site.code] += render_chunk(site, chunk, sub, share)
            if progress:
                progress(len(chunk))
    else:
        # spawn, not fork: callers (Prefect, servers) may hold threads that fork would copy.
        ctx = multiprocessing.get_context("spawn")
        results: list[list[ImageRecord]] = [[] for _ in tasks]
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            futures = {pool.submit(render_chunk, *t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(len(tasks[futures[fut]][1]))
        for (site, _, _, _), recs in zip(tasks, results, strict=True):  # plan order, not finish order
            records[site.code] += recs
    n_faults = 0
    for site, cases, counts, finish_seq in plans:
        n_faults += finish_site(
            site,
            cases,
            records[site.code],
            site_dir=out / site.code,
            counts=counts,
            rng=np.random.default_rng(finish_seq),
        )
    if burned_in:
        for site in profiles:
            write_truth(out / site.code / "burned_in.csv",
                        [(r.file, t) for r in records[site.code] for t in r.burned])
    (out / "sites.json").write_text(
        json.dumps([s.json() for s in profiles], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    all_records = [r for recs in records.values() for r in recs]
    return SynthSummary(
        out=out,
        sites=tuple(s.code for s in profiles),
        cases=sum(len(c) for _, c, _, _ in plans),
        images=len(all_records),
        bytes=sum(r.size for r in all_records),
        faults=n_faults,
        seconds=time.perf_counter() - started,
    )
