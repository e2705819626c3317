"""The crossover design of a reader study, as pure functions of the seed.

Each reader reads every case once per arm. Half of the readers (alternating in a seeded
shuffle of the reader list) read unaided first, the others aided first; the second session
opens after the washout. A session's reading order is a permutation drawn from a generator
seeded with (study seed, reader, session number): reproducible from the seed, different per
reader and per session.
"""

from __future__ import annotations

import hashlib

import numpy as np

ARMS = ("unaided", "aided")


def _generator(seed: int, *parts: str | int) -> np.random.Generator:
    # A stable digest (not hash(): salted per process) so that the same seed gives the same
    # order in every process and on every machine.
    text = "\x00".join(str(p) for p in (seed, *parts))
    words = np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint32)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words.tolist())))


def first_arms(readers: list[str], seed: int) -> dict[str, str]:
    """Which arm each reader reads first: half unaided first, half aided first (one more
    unaided-first reader when their number is odd), assigned by a seeded shuffle."""
    shuffled = list(readers)
    _generator(seed, "arms").shuffle(shuffled)
    return {r: ARMS[i % 2] for i, r in enumerate(shuffled)}


def reading_order(labels: list[str], *, seed: int, reader: str, session: int) -> list[str]:
    """The study's case labels in the order ``reader`` reads them in ``session`` (1 or 2)."""
    items = sorted(labels)
    order = _generator(seed, "order", reader, session).permutation(len(items))
    return [items[i] for i in order]


def arm_of(first_arm: str, session: int) -> str:
    """The arm of session 1 or 2 for a reader who reads ``first_arm`` first."""
    return first_arm if session == 1 else ARMS[1 - ARMS.index(first_arm)]


__all__ = ["ARMS", "arm_of", "first_arms", "reading_order"]
