"""The gateway's queue keeps English and stable codes whatever language the gateway runs in
(a hospital's LANG=zh_CN): a failed delivery's record is read by the consortium's engineers and
matched by code, as the central receipts are (error, error_code)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from bonebase.db.sites import Site, require_active
from bonebase.errors import InputError
from bonebase.gateway import deliver
from bonebase.i18n import language
from bonebase.storage import open_store
from tests.gateway.conftest import SITE, spool_with_batches

ZH = "zh-Hans"
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _batches(spool):
    with spool.db() as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM batches ORDER BY created")]


def _refusal() -> InputError:
    """A bonebase error raised with ``_`` in the current language (the inactive-site refusal)."""
    site = Site(id=1, code=SITE, name="Hospital HX", country="", contact="", active=False,
                created_at=datetime(2026, 1, 1))
    try:
        require_active(site)
    except InputError as exc:
        return exc
    raise AssertionError("an inactive site was not refused")


def test_a_failed_delivery_is_recorded_in_english_with_its_code_in_chinese(tmp_path, hospital):
    spool = spool_with_batches(tmp_path / "gw", hospital[:1])
    store = open_store(str(tmp_path / "deliveries"))

    def refusing(self, key, data, **kw):  # the ready marker: refused, in the gateway's language
        raise _refusal()

    with language(ZH), pytest.MonkeyPatch.context() as mp:
        assert _HAN.search(str(_refusal()))  # what a person at the gateway would read
        mp.setattr(type(store), "put_bytes", refusing)
        assert deliver.deliver_due(spool, store, site=SITE) == 0
    [batch] = _batches(spool)
    assert batch["state"] == "queued" and batch["attempts"] == 1
    with language("en"):
        english = str(_refusal())
    assert batch["error"] == f"site_inactive: {english}"[:500]
    assert not _HAN.search(batch["error"])


def test_an_os_error_is_recorded_by_its_type_and_text(tmp_path, hospital):
    spool = spool_with_batches(tmp_path / "gw", hospital[:1])
    store = open_store(str(tmp_path / "deliveries"))

    def full(self, key, data, **kw):
        raise OSError(28, "No space left on device")

    with language(ZH), pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(store), "put_bytes", full)
        assert deliver.deliver_due(spool, store, site=SITE) == 0
    assert _batches(spool)[0]["error"] == "OSError: [Errno 28] No space left on device"
