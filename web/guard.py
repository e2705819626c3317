"""Refuse characters that cannot be stored or shown before any route sees them.

PostgreSQL refuses NUL in text, so a NUL in a query string or a form field would otherwise
become a 500 wherever the value reaches SQL. Applied to every route as one dependency, this
answers 400 with the name of the parameter (never its value).
"""

from __future__ import annotations

import re

from fastapi import HTTPException, Request

# C0 controls and DEL, except tab, line feed and carriage return (a textarea may send those).
BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _refuse(where: str, name: str, value: str) -> None:
    found = BAD.search(value)
    if found:
        what = f"{where} {name!r}" if not BAD.search(name) else f"a name in {where}s"
        raise HTTPException(
            400, f"{what} contains a control character (U+{ord(found.group()):04X}) that "
                 "cannot be stored: remove it and send again")


async def refuse_bad_characters(request: Request) -> None:
    """Check path parameters, query parameters and text form fields (not uploaded files)."""
    for name, value in request.path_params.items():
        _refuse("the path part", name, str(value))
    for name, value in request.query_params.multi_items():
        _refuse("the query parameter", name, name + value)
    if request.headers.get("content-type", "").startswith(FORMS):
        # Starlette caches the parsed form on the request: routes and the CSRF check reuse it.
        for name, value in (await request.form()).multi_items():
            _refuse("the form field", name, name + (value if isinstance(value, str) else ""))
