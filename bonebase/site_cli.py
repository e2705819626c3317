"""`bonebase site …`: register and inspect the consortium's hospitals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bonebase.cli_common import console
from bonebase.cli_common import db_url as _db_url
from bonebase.i18n import _
from bonebase.ingest.receipt_text import N_

#: A site's burned-in text policies (bonebase.db.sites.BURNED_IN), shown translated.
_POLICIES = (N_("redact"), N_("quarantine"))

_MATCH_HELP = ("How the site's images match its manifest rows: accession (patient_id + "
               "accession_number), patient_date (patient_id + study_date), study_uid "
               "(study_instance_uid) or folder (the folder holding a case's images); a "
               "submission's own --match wins over it. Default: accession, where a row with an "
               "empty accession_number matches its patient's images without AccessionNumber "
               "(docs/manifest.md).")

_DESCRIPTORS_HELP = ("Keep free-text descriptions, comments and histories, cleaned of identifying "
                     "text by a detector (default: removed, as the DICOM Basic Profile does).")
_LANGUAGE_HELP = ("The language of the site's receipts and quarantine reasons: en (English, the "
                  "default) or zh-Hans (Simplified Chinese); the JSON receipt keeps the same "
                  "codes in either.")
_BURNED_IN_HELP = ("What to do with an image whose pixels show identifying text: redact (black "
                   "it out, the default) or quarantine (hold it for a data steward).")

site_app = typer.Typer(help="Register and inspect the consortium's hospitals (sites).",
                       no_args_is_help=True)


@site_app.command("add")
def site_add(
    code: Annotated[str, typer.Argument(help="Site code: 2-8 upper-case letters/digits, e.g. HX.")],
    name: Annotated[str, typer.Option("--name", help="The hospital's name.")],
    country: Annotated[str, typer.Option("--country", help="Country (ISO code or name).")] = "",
    contact: Annotated[str, typer.Option("--contact", help="Data contact (e-mail).")] = "",
    match: Annotated[str | None, typer.Option("--match", help=_MATCH_HELP)] = None,
    keep_descriptors: Annotated[bool, typer.Option(
        "--keep-descriptors/--no-keep-descriptors", help=_DESCRIPTORS_HELP)] = False,
    burned_in: Annotated[str, typer.Option("--burned-in", help=_BURNED_IN_HELP)] = "redact",
    language: Annotated[str, typer.Option("--language", help=_LANGUAGE_HELP)] = "en",
) -> None:
    """Register a hospital."""
    from bonebase.db.engine import connect
    from bonebase.db.sites import add_site, check_code, check_language
    from bonebase.ingest.match import check_rule

    check_code(code)  # before starting a server for a typo
    check_language(language)
    if match is not None:
        check_rule(match)
    with connect(_db_url()) as conn:
        site = add_site(conn, code=code, name=name, country=country, contact=contact,
                        match_rule=match, keep_descriptors=keep_descriptors, burned_in=burned_in,
                        language=language)
    console.print(_("site {code} added: {name}").format(code=site.code, name=site.name))


@site_app.command("list")
def site_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the registered hospitals."""
    from bonebase.db.engine import connect
    from bonebase.db.sites import list_sites

    with connect(_db_url()) as conn:
        sites = list_sites(conn)
    if as_json:
        print(json.dumps([{"code": s.code, "name": s.name, "country": s.country,
                           "contact": s.contact, "active": s.active,
                           "match_rule": s.match_rule, "keep_descriptors": s.keep_descriptors,
                           "burned_in": s.burned_in, "language": s.language} for s in sites],
                         indent=2, ensure_ascii=False))
        return
    table = Table(_("code"), _("name"), _("country"), _("contact"), _("active"),
                  _("match rule"), _("descriptors"), _("burned-in text"), _("language"))
    for s in sites:
        table.add_row(s.code, s.name, s.country, s.contact, _("yes") if s.active else _("no"),
                      _rule(s.match_rule), _("kept") if s.keep_descriptors else _("removed"),
                      _(s.burned_in), s.language)
    console.print(table if sites else _("no sites yet: `bonebase site add CODE --name ...`"))


@site_app.command("show")
def site_show(code: Annotated[str, typer.Argument(help="Site code.")]) -> None:
    """Show one hospital and its recent audit events."""
    from bonebase.db import audit
    from bonebase.db.engine import connect
    from bonebase.db.sites import get_site

    with connect(_db_url()) as conn:
        site = get_site(conn, code)
        events = audit.events(conn, entity="site", entity_id=code, limit=10)
    for key, label in (("code", N_("code")), ("name", N_("name")), ("country", N_("country")),
                       ("contact", N_("contact")), ("active", N_("active")),
                       ("created_at", N_("created_at"))):
        console.print(f"{_(label):<10} {getattr(site, key)}")
    console.print(f"{_('match rule'):<10} {_rule(site.match_rule)}")
    kept = _("kept, cleaned") if site.keep_descriptors else _("removed")
    console.print(f"{_('descriptors'):<10} {kept}")
    console.print(f"{_('burned-in text'):<10} {_(site.burned_in)}")
    console.print(f"{_('language'):<10} {site.language}")
    for e in events:
        console.print(f"  {e['at']:%Y-%m-%d %H:%M} {e['actor']}: {e['action']} {e['details']}")


def _rule(rule: str | None) -> str:
    from bonebase.ingest.match import DEFAULT

    return rule or _("{rule} (the default)").format(rule=DEFAULT)


@site_app.command("import")
def site_import(
    path: Annotated[Path, typer.Argument(help="JSON list of {code, name, country, contact}.")],
) -> None:
    """Register every hospital of a sites.json (as `bonebase synth` writes); existing ones are kept."""
    from bonebase.db.engine import connect
    from bonebase.db.sites import add_site, list_sites
    from bonebase.errors import InputError

    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(entries, list)
    except (OSError, ValueError, AssertionError) as exc:
        raise InputError(_("{path}: expected a JSON list of sites ({error}); see `bonebase site "
                           "import --help`").format(path=path, error=exc.__class__.__name__)
                         ) from None
    with connect(_db_url()) as conn:
        known = {s.code for s in list_sites(conn)}
        for i, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or "code" not in entry or "name" not in entry:
                raise InputError(_("{path}: entry {i} needs 'code' and 'name'")
                                 .format(path=path, i=i))
            if entry["code"] in known:
                console.print(_("site {code} exists, kept").format(code=entry["code"]))
                continue
            add_site(conn, code=entry["code"], name=entry["name"],
                     country=entry.get("country", ""), contact=entry.get("contact", ""),
                     language=entry.get("language") or "en")
            console.print(_("site {code} added: {name}").format(**entry))


@site_app.command("quality")
def site_quality(
    code: Annotated[str | None, typer.Argument(help="One site (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-site quality scorecard: acceptance rate, top quarantine reasons, recent trend."""
    from bonebase.db.engine import connect
    from bonebase.db.quality import site_quality as scorecards

    with connect(_db_url()) as conn:
        cards = scorecards(conn, site=code)
    if as_json:
        print(json.dumps(cards, indent=2))
        return
    table = Table(_("site"), _("submissions"), _("rows"), _("accepted"), _("rate"),
                  _("top reasons"), _("trend"))
    for c in cards:
        rate = "-" if c["acceptance"] is None else f"{c['acceptance']:.0%}"
        reasons = ", ".join(f"{r} {n}" for r, n in c["top_reasons"])
        trend = " ".join("-" if t["acceptance"] is None else f"{t['acceptance']:.0%}"
                         for t in c["trend"])
        table.add_row(c["site"], str(c["submissions"]), str(c["rows"]), str(c["cases_accepted"]),
                      rate, reasons, trend)
    console.print(table if cards else _("no sites yet"))


@site_app.command("update")
def site_update(
    code: Annotated[str, typer.Argument(help="Site code.")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    country: Annotated[str | None, typer.Option("--country")] = None,
    contact: Annotated[str | None, typer.Option("--contact")] = None,
    active: Annotated[bool | None, typer.Option(
        "--active/--inactive", help="An inactive site's submissions are refused.")] = None,
    match: Annotated[str | None, typer.Option(
        "--match", help=_MATCH_HELP + " 'default' clears the site's rule.")] = None,
    keep_descriptors: Annotated[bool | None, typer.Option(
        "--keep-descriptors/--no-keep-descriptors", help=_DESCRIPTORS_HELP)] = None,
    burned_in: Annotated[str | None, typer.Option("--burned-in", help=_BURNED_IN_HELP)] = None,
    language: Annotated[str | None, typer.Option("--language", help=_LANGUAGE_HELP)] = None,
) -> None:
    """Change a hospital's name, country, contact, active flag, match rule, de-identification
    settings or language."""
    from bonebase.db.engine import connect
    from bonebase.db.sites import update_site

    with connect(_db_url()) as conn:
        site = update_site(conn, code, name=name, country=country, contact=contact, active=active,
                           match_rule=match, keep_descriptors=keep_descriptors,
                           burned_in=burned_in, language=language)
    console.print(_("site {code} updated").format(code=site.code))
