"""Run a planned BTXRD import: sites registered, one flow run per centre, findings and outlines
recorded with the centre's submission (see btxrd_import for the design)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.types.json import Jsonb

from bonebase.config import Settings
from bonebase.db import quarantine
from bonebase.db.engine import connect, database_url
from bonebase.db.sites import add_site, get_site
from bonebase.errors import NotFoundError
from bonebase.importers import btxrd_import as imp
from bonebase.importers.btxrd import Finding


@dataclass
class CentreResult:
    centre: int
    site: str
    rows: int
    submission: int | None = None
    receipt: dict = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    outlines: int = 0  # images whose shapes are stored


def ensure_site(url: str, code: str, name: str) -> bool:
    """Register the centre's site unless it exists; True when it was added."""
    with connect(url) as conn:
        try:
            get_site(conn, code)
            return False
        except NotFoundError:
            add_site(conn, code=code, name=name, actor="bonebase import btxrd")
            conn.commit()
            return True


def _items(findings: list[Finding]) -> list[quarantine.QuarantineItem]:
    return [quarantine.QuarantineItem(f.reason, f.message, file=f.file, row_number=f.row)
            for f in findings]


def record_findings(url: str, *, site: str, submission_id: int, findings: list[Finding],
                    receipts: Path | None = None) -> None:
    """The table's findings as the submission's quarantine items and receipt lines (once); the
    receipt's files in ``receipts`` (the flow's folder) are written again with them."""
    with connect(url) as conn:
        site_id = get_site(conn, site).id
        quarantine.add_many(conn, submission_id=submission_id, site_id=site_id,
                            items=_items(findings))
        receipt = conn.execute("SELECT receipt FROM submissions WHERE id = %s",
                               (submission_id,)).fetchone()["receipt"] or {}
        if "import" not in receipt:
            lines = [{"reason": f.reason, "severity": "error", "message": f.message,
                      "file": f.file, "row": f.row, "case": None, "fix": "see the message"}
                     for f in findings]
            counts = receipt.setdefault("counts", {})
            by_reason = Counter(counts.get("by_reason", {}))
            by_reason.update(f.reason for f in findings)
            counts["quarantined"] = counts.get("quarantined", 0) + len(findings)
            counts["by_reason"] = dict(sorted(by_reason.items()))
            receipt["quarantine"] = [*receipt.get("quarantine", []), *lines]
            receipt["import"] = {"dataset": "BTXRD", "findings": len(findings)}
            conn.execute("UPDATE submissions SET receipt = %s, counts = %s WHERE id = %s",
                         (Jsonb(receipt), Jsonb(counts), submission_id))
            if receipts is not None and receipt.get("status") == "done":
                from bonebase.ingest.receipt import write_receipt

                write_receipt(receipt, receipts)
        conn.commit()


def count_outlines(url: str, submission_id: int) -> int:
    """The submission's stored images that carry outlines. The flow stores them itself (the
    manifest's annotation_file column, bonebase.ingest.named): counted here, not stored again."""
    with connect(url) as conn:
        return conn.execute(
            "SELECT count(DISTINCT i.id) AS n FROM instances i JOIN lesion_annotations a"
            " ON a.instance_id = i.id WHERE i.submission_id = %s", (submission_id,)
        ).fetchone()["n"]


def run(root: Path, *, sites: dict[int, tuple[str, str]], settings: Settings,
        say: Callable[[str], None] = print, progress=None) -> list[CentreResult]:
    """Import a BTXRD folder (already opened): one submission per centre through the flow."""
    from flows.ingest import ingest_submission

    url = database_url(settings)
    centres, loose = imp.plan(root, sites)
    if loose and centres:
        centres[0].findings.extend(loose)
    results = []
    scratch = settings.home / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    for centre in centres:
        if ensure_site(url, centre.code, centre.name):
            say(f"registered site {centre.code} ({centre.name})")
        result = CentreResult(centre.centre, centre.code, len(centre.rows), findings=centre.findings)
        folder = Path(tempfile.mkdtemp(prefix=f"btxrd-{centre.code}-", dir=scratch))
        try:
            imp.write_submission(centre, folder / "submission")
            say(f"centre {centre.centre} -> site {centre.code}: {len(centre.rows)} images, "
                f"{len(centre.findings)} findings in the table; ingesting")
            receipt = ingest_submission(centre.code, str(folder / "submission"),
                                        settings=settings, progress=progress)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        result.submission = receipt.get("submission")
        if result.submission is not None:
            record_findings(url, site=centre.code, submission_id=result.submission,
                            findings=centre.findings, receipts=settings.home / "receipts")
            result.outlines = count_outlines(url, result.submission)
            with connect(url) as conn:
                stored = conn.execute("SELECT receipt FROM submissions WHERE id = %s",
                                      (result.submission,)).fetchone()["receipt"]
            # The stored receipt has the table's findings; the flow's answer has its timings.
            result.receipt = {**receipt, **(stored or {}),
                              "already_ingested": bool(receipt.get("already_ingested"))}
        results.append(result)
    return results


def write_submissions(root: Path, out: Path, *, sites: dict[int, tuple[str, str]],
                      confirmed: bool = True) -> list[tuple[imp.CentrePlan, Path]]:
    """``--as-submission``: each centre's submission folder and its findings.json, no ingest."""
    centres, loose = imp.plan(root, sites)
    if loose and centres:
        centres[0].findings.extend(loose)
    written = []
    for centre in centres:
        folder = imp.write_submission(centre, out / centre.code, confirmed=confirmed)
        (folder.parent / f"{centre.code}-findings.json").write_text(json.dumps(
            [f.__dict__ for f in centre.findings], indent=2))
        written.append((centre, folder))
    return written
