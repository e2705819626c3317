"""The watch's table: for the champion, each site's newest performance and drift checks."""

from __future__ import annotations

from psycopg import Connection

from bonebase.monitor import db


def table(conn: Connection, *, model_id: int, site: str | None = None) -> list[dict]:
    """One row per checked site (sorted): n, AUC with CI, sensitivity/specificity at the locked
    threshold, ECE, drift share and drifting features, alert reasons, check ids."""
    latest = db.latest_checks(conn, model_id=model_id)
    by_site: dict[str, dict] = {}
    for c in latest:
        if site and c["site"] != site:
            continue
        row = by_site.setdefault(c["site"], {"site": c["site"], "alerts": []})
        if c["kind"] == "performance":
            figs = c["result"]["all"]
            row.update(n=figs["n"], positives=figs["positives"], auc=figs["auc"],
                       sensitivity=figs["sensitivity"], specificity=figs["specificity"],
                       ece=figs["ece"], months=c["result"].get("months", {}),
                       performance_check=c["id"], checked_at=c["checked_at"].isoformat())
        else:
            row.update(drift_share=c["result"]["share"], drifted=c["result"]["drifted"],
                       drift_check=c["id"], report_key=c["report_key"])
        if c["breached"] and c["acknowledged_at"] is None:
            row["alerts"].extend(f"{c['kind']}: {r}" for r in c["result"].get("reasons", []))
    return [by_site[k] for k in sorted(by_site)]


def ask_the_model(conn: Connection, *, model_row: dict, positive_class: str,
                  intermediate_as: str = "benign") -> dict:
    """Figures of the web database's "Ask the model" answers on cases with a known diagnosis,
    per site (all model versions of the champion's task)."""
    from bonebase.monitor import performance  # SciPy: seconds to import, the table needs none

    rows = performance.ask_the_model_rows(db.ask_the_model(conn), task=model_row["task"],
                                          positive_class=positive_class,
                                          intermediate_as=intermediate_as)
    threshold = float(model_row["threshold"] or 0.5)
    return performance.by_site(rows, threshold)


def _ci(d: dict | None) -> str:
    if not d:
        return "–"
    return f"{d['value']:.2f} ({d['lo']:.2f}–{d['hi']:.2f})"


def text_rows(rows: list[dict]) -> list[list[str]]:
    """The table's cells as text, for the CLI."""
    out = []
    for r in rows:
        share = r.get("drift_share")
        out.append([r["site"], str(r.get("n", 0)), str(r.get("positives", 0)), _ci(r.get("auc")),
                    _ci(r.get("sensitivity")), _ci(r.get("specificity")),
                    "–" if r.get("ece") is None else f"{r['ece']:.3f}",
                    "–" if share is None else f"{share:.2f}",
                    ", ".join(r.get("drifted", [])) or "–",
                    "ALERT" if r["alerts"] else "ok"])
    return out


HEADERS = ["site", "n", "pos", "AUC (95% CI)", "sensitivity", "specificity", "ECE",
           "drift share", "drifting features", "alert"]

__all__ = ["HEADERS", "ask_the_model", "table", "text_rows"]
