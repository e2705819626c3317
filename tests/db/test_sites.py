import pytest

from bonebase.db import audit
from bonebase.db.sites import add_site, check_code, get_site, list_sites, update_site
from bonebase.errors import InputError, NotFoundError


@pytest.mark.parametrize("code", ["hx", "H", "TOOLONGCODE", "H-X", "", "HX "])
def test_bad_codes_are_refused_with_the_rule(code):
    with pytest.raises(InputError, match="2-8 upper-case"):
        check_code(code)


def test_add_list_show_update(db):
    add_site(db, code="HX", name="Hospital X", country="CN", contact="a@x.org", actor="steward")
    add_site(db, code="BJ1", name="Beijing 1")
    assert [s.code for s in list_sites(db)] == ["BJ1", "HX"]
    site = get_site(db, "HX")
    assert (site.name, site.country, site.contact, site.active) == ("Hospital X", "CN", "a@x.org", True)
    update_site(db, "HX", contact="b@x.org", active=False, actor="steward")
    assert get_site(db, "HX").contact == "b@x.org"
    assert get_site(db, "HX").active is False
    actions = [(e["action"], e["actor"]) for e in audit.events(db, entity="site", entity_id="HX")]
    assert actions == [("site.update", "steward"), ("site.add", "steward")]


def test_duplicate_site_is_refused_and_audit_has_one_event(db):
    add_site(db, code="HX", name="Hospital X")
    with pytest.raises(InputError, match="already exists"):
        add_site(db, code="HX", name="Another")
    assert get_site(db, "HX").name == "Hospital X"
    assert len(audit.events(db, entity="site", entity_id="HX")) == 1


def test_missing_site(db):
    with pytest.raises(NotFoundError, match="site list"):
        get_site(db, "NOPE")


def test_an_inactive_site_may_not_submit(db):
    from bonebase.db.sites import require_active

    add_site(db, code="HX", name="Hospital X")
    assert require_active(get_site(db, "HX")).code == "HX"
    update_site(db, "HX", active=False)
    with pytest.raises(InputError, match=r"site HX \(Hospital X\) is marked inactive.*"
                                         r"bonebase site update HX --active"):
        require_active(get_site(db, "HX"))


def test_a_sites_match_rule_is_stored_checked_and_cleared(db):
    import psycopg

    add_site(db, code="HX", name="Hospital X", match_rule="folder")
    assert get_site(db, "HX").match_rule == "folder"
    assert update_site(db, "HX", match_rule="patient_date").match_rule == "patient_date"
    assert update_site(db, "HX", match_rule="default").match_rule is None  # the default again
    with pytest.raises(InputError, match="match rule 'uid' is unknown"):
        update_site(db, "HX", match_rule="uid")
    with pytest.raises(InputError, match="match rule 'date' is unknown"):
        add_site(db, code="BJ", name="B", match_rule="date")
    with pytest.raises(psycopg.errors.CheckViolation):  # migration 0007's check, under the code
        db.execute("UPDATE sites SET match_rule = 'anything' WHERE code = 'HX'")
    db.rollback()


def test_site_commands_take_and_print_the_match_rule(bonebase_env, db_url):
    import json

    from typer.testing import CliRunner

    from bonebase.site_cli import site_app

    runner = CliRunner()
    added = runner.invoke(site_app, ["add", "HX", "--name", "Hospital X", "--match", "folder"])
    assert added.exit_code == 0, added.output
    assert "match rule folder" in runner.invoke(site_app, ["show", "HX"]).output
    runner.invoke(site_app, ["update", "HX", "--match", "default"])
    listed = json.loads(runner.invoke(site_app, ["list", "--json"]).output)
    assert listed[0]["match_rule"] is None
    assert "accession (the default)" in runner.invoke(site_app, ["show", "HX"]).output
    refused = runner.invoke(site_app, ["update", "HX", "--match", "uid"])
    assert refused.exit_code != 0 and "match rule 'uid' is unknown" in str(refused.exception)


def test_a_sites_de_identification_settings(bonebase_env, db_url):
    from typer.testing import CliRunner

    from bonebase.site_cli import site_app

    runner = CliRunner()
    added = runner.invoke(site_app, ["add", "HX", "--name", "Hospital X", "--keep-descriptors",
                                     "--burned-in", "quarantine"])
    assert added.exit_code == 0, added.output
    shown = runner.invoke(site_app, ["show", "HX"]).output
    assert "kept, cleaned" in shown and "quarantine" in shown
    runner.invoke(site_app, ["update", "HX", "--no-keep-descriptors", "--burned-in", "redact"])
    shown = runner.invoke(site_app, ["show", "HX"]).output
    assert "removed" in shown and "redact" in shown
    refused = runner.invoke(site_app, ["update", "HX", "--burned-in", "blur"])
    assert refused.exit_code != 0 and "burned-in policy 'blur' is unknown" in str(refused.exception)
