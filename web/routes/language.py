"""The language switch (#25): a signed-in user's setting, or a cookie before signing in."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
