"""A submission opened and listed, with its site's settings: what the ingest flow
(flows/ingest.py) and `bonebase validate` (flows/ingest_check.py) run on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bonebase.ingest import match, scan


@dataclass
class Opened:
    """A submission opened and listed: what `bonebase submit` and `bonebase validate` run on."""

    site: str
    root: Path
    manifest_path: Path
    entries: list[scan.FileEntry]
    rule: tuple[str, str]  # the match rule and where it was declared
    keep_descriptors: bool = False  # the site's de-identification settings (#19)
    burned_in: str = "redact"
    language: str = "en"  # the site's language: its Markdown receipt is written in it (#25)

    @classmethod
    def of(cls, site_row, root: Path, manifest_path: Path, entries: list[scan.FileEntry],
           match_rule: str | None) -> Opened:
        """A submission of the registered site ``site_row`` (its settings) under ``root``."""
        return cls(site=site_row.code, root=root, manifest_path=manifest_path, entries=entries,
                   rule=match.choose(match_rule, site_row.match_rule),
                   keep_descriptors=site_row.keep_descriptors, burned_in=site_row.burned_in,
                   language=site_row.language)

    @property
    def base(self) -> str:
        """The folder of manifest.csv in the submission (the folder column is relative to it)."""
        return self.manifest_path.parent.relative_to(self.root).as_posix()
