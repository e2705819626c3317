"""Reader studies in the web database (#22): the reading page (role reader) and the admin's study pages."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
