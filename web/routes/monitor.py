"""The monitoring page (#23): the champion's performance per site over time, drift, alerts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
