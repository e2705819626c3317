"""Seconds spent per stage of an ingest run."""

from __future__ import annotations

import time


class Clock:
    """Seconds spent per stage, reported with the receipt (and read by benchmarks/ingest.py)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now
