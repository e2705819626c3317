"""A held item looked at before deciding (#17 point 3): the page and the CLI, who may look, the
audit log of every look, and the `[redacted]` marker printed as it is."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from tests.web.conftest import PASSWORD, _truncate, csrf_of, sign_in

NAME, PID = "Doe^Jane", "PID-778899"
HELD_MESSAGE = ("[redacted]/IMG1.dcm: identifying values remain after de-identification: "
                "(0008,0070) Manufacturer holds the PatientName value (person name); held for "
                "review by a data steward")


def _original(**values: str) -> bytes:
    """A real multi-frame MR (pydicom's emri_small: 10 frames of 64 x 64) as a site sent it."""
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    ds.PatientID, ds.PatientName = PID, NAME
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def held(migrated_database, tmp_path_factory) -> dict:
    """Two sites, their stewards, an admin and a viewer; held items with their originals kept
    as store_quarantine keeps them."""
    from bonebase.db import quarantine, submissions
    from bonebase.db.engine import connect
    from bonebase.db.quarantine import QuarantineItem
    from bonebase.db.sites import add_site
    from bonebase.db.users import add_user
    from bonebase.storage import LocalStore, content_key, sha256_file

    _truncate(migrated_database)
    home = tmp_path_factory.mktemp("held-home")
    store = LocalStore(home / "objects")

    def keep(sub: int, data: bytes) -> str:
        path = home / "original.bin"
        path.write_bytes(data)
        key = content_key(sha256_file(path), area=f"quarantine/{sub}", suffix=".bin")
        store.put_bytes(key, data)
        return key

    ids = {}
    with connect(migrated_database) as conn:
        for code in ("HX", "BJ1"):
            site = add_site(conn, code=code, name=f"Hospital {code}")
            sub = submissions.register(conn, site_id=site.id, source="s", content_hash=code * 8)[0]
            residue = _original(Manufacturer="Jane Doe", InstitutionName="TOSHIBA",
                                ManufacturerModelName="TOSHIBA_MEC")
            items = [QuarantineItem("phi_residue", HELD_MESSAGE, file="[redacted]/IMG1.dcm",
                                    object_key=keep(sub["id"], residue))]
            if code == "HX":
                vendor = _original(InstitutionName="TOSHIBA", Manufacturer="TOSHIBA_MEC")
                manifest = f"quarantine/{sub['id']}/manifest.csv"
                store.put_bytes(manifest, b"patient_id,case_id\n")
                items += [
                    QuarantineItem("phi_residue", "IMG2.dcm: identifying values remain after"
                                   " de-identification (1 hits)", file="IMG2.dcm",
                                   object_key=keep(sub["id"], vendor)),
                    QuarantineItem("missing_images", "row 3: patient_id '[redacted]' has no"
                                   " images", row_number=3, object_key=manifest),
                    QuarantineItem("corrupt_file", "broken.dcm: corrupt", file="broken.dcm",
                                   object_key=keep(sub["id"], vendor[:3000])),
                    QuarantineItem("non_dicom", "notes.txt: not DICOM", file="notes.txt",
                                   object_key=keep(sub["id"], b"Jane Doe, notes\n"))]
            quarantine.add_many(conn, submission_id=sub["id"], site_id=site.id, items=items)
            for item in quarantine.list_items(conn, site=code):
                ids[(code, item["reason"], item["row_number"] or item["file"])] = item["id"]
        for name, role, site in (("stan", "steward", "HX"), ("olga", "steward", "BJ1"),
                                 ("ada", "admin", None), ("vera", "viewer", None)):
            add_user(conn, username=name, role=role, password=PASSWORD, site=site, actor="test")
        conn.commit()
    return {"url": migrated_database, "store": store, "home": home,
            "residue": ids[("HX", "phi_residue", "[redacted]/IMG1.dcm")],
            "vendor": ids[("HX", "phi_residue", "IMG2.dcm")],
            "row": ids[("HX", "missing_images", 3)],
            "hostile": [ids[("HX", "corrupt_file", "broken.dcm")],
                        ids[("HX", "non_dicom", "notes.txt")]],
            "other_site": ids[("BJ1", "phi_residue", "[redacted]/IMG1.dcm")]}


@pytest.fixture
def client(held):
    from fastapi.testclient import TestClient

    from web.app import create_app
    from web.settings import WebSettings

    app = create_app(db_url=held["url"], store=held["store"], secret=b"s" * 32,
                     web=WebSettings(), pool_size=2)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _views(url: str, item_id: int) -> list[tuple[str, str]]:
    from bonebase.db import audit
    from bonebase.db.engine import connect

    with connect(url) as conn:
        return [(e["actor"], e["details"]["part"]) for e in audit.events(
            conn, entity="quarantine_item", entity_id=str(item_id))
            if e["action"] == "quarantine.view"]


def test_steward_of_the_site_sees_findings_header_and_first_frame(held, client):
    item = held["residue"]
    assert sign_in(client, "stan").status_code == 303
    page = client.get(f"/quarantine/{item}")
    assert page.status_code == 200
    html = page.text
    assert "(0008,0070) Manufacturer holds the PatientName value (person name)" in html
    assert "InstitutionName value" not in html  # TOSHIBA in TOSHIBA_MEC: no residue by the rule
    # The original header, for the site's own steward, with what de-identification does.
    assert "Doe^Jane" in html and PID in html
    assert ('<td>(0010,0010)</td><td>PatientName</td><td>PN</td><td class="msg">Doe^Jane</td>'
            '<td class="action">replaced</td>') in html
    assert ('<td class="msg">Jane Doe</td><td class="action">kept</td>'
            '<td class="holds">PatientName value (person name)</td>') in html
    assert '<td class="msg">TOSHIBA</td><td class="action">emptied</td>' in html
    assert f'src="/quarantine/{item}/image.png"' in html
    assert f'action="/quarantine/{item}/release"' in html and csrf_of(html)
    image = client.get(f"/quarantine/{item}/image.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert "no-store" in image.headers["cache-control"]
    shown = np.asarray(Image.open(io.BytesIO(image.content)))
    frames = pydicom.dcmread(get_testdata_file("emri_small.dcm")).pixel_array.astype(float)
    # The first of ten frames: it correlates with frame 0 better than with any other frame.
    corr = [np.corrcoef(shown.ravel(), f.ravel())[0, 1] for f in frames]
    assert shown.shape == (64, 64) and int(np.argmax(corr)) == 0 and corr[0] > 0.95
    assert _views(held["url"], item)[-2:] == [("stan", "image"), ("stan", "page")]


def test_other_sites_steward_and_a_viewer_are_refused(held, client):
    item = held["residue"]
    before = _views(held["url"], item)
    sign_in(client, "olga")
    for path in (f"/quarantine/{item}", f"/quarantine/{item}/image.png"):
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert "Doe^Jane" not in refused.text and "site HX" in refused.text
    assert client.get(f"/quarantine/{held['other_site']}").status_code == 200  # her own
    sign_in(client, "vera")
    assert client.get(f"/quarantine/{item}").status_code == 403
    assert _views(held["url"], item) == before  # a refused look reads nothing, records nothing


def test_admin_sees_every_site_and_items_without_an_image(held, client):
    sign_in(client, "ada")
    assert client.get(f"/quarantine/{held['residue']}").status_code == 200
    row = client.get(f"/quarantine/{held['row']}")
    assert row.status_code == 200 and "a manifest row: row 3" in row.text
    assert "image.png" not in row.text
    assert client.get(f"/quarantine/{held['row']}/image.png").status_code == 400
    for item in held["hostile"]:  # a truncated DICOM file, a text file: said, never a 500
        page = client.get(f"/quarantine/{item}")
        assert page.status_code == 200
        assert "the original cannot be read as a DICOM image (corrupt_file)" in page.text or (
            "the original cannot be read as a DICOM image (non_dicom)" in page.text)
        image = client.get(f"/quarantine/{item}/image.png")
        assert image.status_code == 400 and "cannot be read as a DICOM image" in image.text
    vendor = client.get(f"/quarantine/{held['vendor']}")
    assert 'id="findings-cleared"' in vendor.text  # held under the old rule: cleared today
    assert ("ada", "page") in _views(held["url"], held["residue"])


def test_release_from_the_page(held, client):
    sign_in(client, "stan")
    page = client.get(f"/quarantine/{held['vendor']}")
    done = client.post(f"/quarantine/{held['vendor']}/release",
                       data={"reason": "TOSHIBA_MEC is the vendor", "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303
    assert "released by stan: TOSHIBA_MEC is the vendor" in client.get(
        f"/quarantine/{held['vendor']}").text


def _cli(held: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BONEBASE_HOME": str(held["home"]), "DATABASE_URL": held["url"],
           "COLUMNS": "250"}
    env.pop("BONEBASE_STORAGE_URL", None)
    return subprocess.run([sys.executable, "-m", "bonebase.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_list_prints_the_redacted_marker(held):
    listed = _cli(held, "quarantine", "list", "--site", "HX", "--status", "all")
    assert listed.returncode == 0, listed.stderr
    # rich used to read "[redacted]" as a style tag and print "patient_id ''".
    assert "patient_id '[redacted]' has no images" in listed.stdout
    assert "[redacted]/IMG1.dcm" in listed.stdout


def test_cli_show_header_and_image(held, tmp_path):
    item, png = held["residue"], tmp_path / "held.png"
    shown = _cli(held, "quarantine", "show", str(item), "--header", "--image", str(png),
                 "--by", "steward-ann")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "(0008,0070) Manufacturer holds the PatientName value (person name)" in out
    assert "[redacted]/IMG1.dcm" in out
    lines = out.splitlines()
    assert ["(0010,0010)", "PatientName", "PN", "replaced", NAME] in [ln.split() for ln in lines]
    assert [ln.split() for ln in lines if "(0008,0070) Manufacturer" in ln and "<-" in ln] == [
        ["(0008,0070)", "Manufacturer", "LO", "kept", "Jane", "Doe", "<-", "still", "holds", "the",
         "PatientName", "value", "(person", "name)"]]
    assert Image.open(png).size == (64, 64)
    assert _views(held["url"], item)[0] == ("steward-ann", "summary+header+image")
    row = _cli(held, "quarantine", "show", str(held["row"]))
    assert row.returncode == 0 and "a manifest row: row 3" in row.stdout
