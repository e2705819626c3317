"""Per-site data quality: acceptance rate, top quarantine reasons, trend over submissions."""

from __future__ import annotations

from psycopg import Connection


def site_quality(conn: Connection, *, site: str | None = None, last: int = 5) -> list[dict]:
    """One scorecard per site from the submissions' receipts and the quarantine."""
    where, args = ("WHERE t.code = %s", [site]) if site else ("", [])
    sites = conn.execute(f"SELECT id, code, name FROM sites t {where} ORDER BY code", args).fetchall()
    cards = []
    for s in sites:
        subs = conn.execute(
            "SELECT id, created_at, counts FROM submissions WHERE site_id = %s AND status = 'done'"
            " ORDER BY id", (s["id"],)).fetchall()
        rows = sum(int((x["counts"] or {}).get("rows", 0)) for x in subs)
        accepted = sum(int((x["counts"] or {}).get("cases_accepted", 0)) for x in subs)
        reasons = conn.execute(
            "SELECT reason, count(*) AS n FROM quarantine_items WHERE site_id = %s"
            " AND reason <> 'case_rejected' GROUP BY reason ORDER BY n DESC, reason LIMIT 5",
            (s["id"],)).fetchall()
        trend = [{"submission": x["id"], "at": x["created_at"].isoformat(timespec="minutes"),
                  "acceptance": _rate((x["counts"] or {}).get("cases_accepted", 0),
                                      (x["counts"] or {}).get("rows", 0))}
                 for x in subs[-last:]]
        cards.append({"site": s["code"], "name": s["name"], "submissions": len(subs),
                      "rows": rows, "cases_accepted": accepted,
                      "acceptance": _rate(accepted, rows),
                      "top_reasons": [(r["reason"], r["n"]) for r in reasons], "trend": trend})
    return cards


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
