"""The role reader sits outside the viewer < researcher < steward < admin hierarchy."""

from __future__ import annotations

import pytest

from bonebase.db.users import ALL_ROLES, ROLES, User, _check
from bonebase.errors import InputError


def _user(role: str) -> User:
    return User(id=1, username="u1", role=role, site=None, active=True)


def test_hierarchy_is_unchanged_and_reader_is_apart():
    for i, role in enumerate(ROLES):
        assert [_user(role).can(r) for r in ROLES] == [j <= i for j in range(len(ROLES))]
        assert not _user(role).can("reader") and not _user(role).is_reader
    reader = _user("reader")
    assert reader.is_reader and reader.can("reader")
    assert not any(reader.can(r) for r in ROLES)


def test_reader_is_a_known_role():
    assert ALL_ROLES[-1] == "reader"
    _check("rina", "reader")
    with pytest.raises(InputError, match="viewer, researcher, steward, admin, reader"):
        _check("rina", "radiologist")
