"""Where a gateway keeps its state: ``BONEBASE_HOME/gateway`` (peers, spool, outbox, clinical/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GatewayHome:
    """The gateway's folders under ``root`` (``BONEBASE_HOME/gateway``); identified data stays
    here, on the hospital's machine."""

    root: Path

    @classmethod
    def under(cls, bonebase_home: Path) -> GatewayHome:
        home = cls(Path(bonebase_home) / "gateway")
        home.create()
        return home

    def create(self) -> None:
        for folder in (self.root, self.incoming, self.studies, self.outbox, self.clinical):
            folder.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # identified images: only the gateway's account reads them

    @property
    def peers_file(self) -> Path:
        return self.root / "peers.json"

    @property
    def state_db(self) -> Path:
        return self.root / "state.sqlite"

    @property
    def incoming(self) -> Path:
        """Instances being received (pynetdicom's chunked temporary files, STOW parts)."""
        return self.root / "spool" / "incoming"

    @property
    def studies(self) -> Path:
        """Received instances, one folder per study: identified, never sent."""
        return self.root / "spool" / "studies"

    @property
    def outbox(self) -> Path:
        """De-identified submission folders waiting for (or done with) delivery."""
        return self.root / "outbox"

    @property
    def prepared(self) -> Path:
        """Complete studies already de-identified, waiting for their batch (on site)."""
        return self.root / "prepared"

    @property
    def clinical(self) -> Path:
        """The hospital's clinical CSV files, keyed by PatientID or AccessionNumber."""
        return self.root / "clinical"

    @property
    def lock_file(self) -> Path:
        return self.root / "work.lock"
