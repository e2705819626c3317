"""Per-site homes cut from one export: each hospital's node with only its own cases.

A real hospital's node makes its export from its own database (``bonebase dataset version`` and
``bonebase dataset checkout N --to $BONEBASE_HOME/federated/data``). To try federated training
on one machine, :func:`partition_export` cuts a consortium export (e.g. of ``bonebase synth``
data) into ``DEST/<CODE>/federated/data`` per site: that site's rows of labels.csv and
split.csv and its images only, so a simulated node sees nothing of the others.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from bonebase.errors import InputError, NotFoundError
from bonebase.federated.config import NODE_DIR


def partition_export(data: Path, dest: Path, sites: list[str]) -> dict[str, Path]:
    """``DEST/<code>/federated/data`` for each of ``sites`` from the export ``data``; returns
    each site's home. Rows of the ``external`` split stay at the consortium."""
    data, dest = Path(data), Path(dest)
    for name in ("labels.csv", "split.csv"):
        if not (data / name).is_file():
            raise NotFoundError(f"{data / name}: missing; export and split first")
    labels = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    split = pd.read_csv(data / "split.csv", dtype=str, keep_default_na=False)
    unknown = sorted(set(sites) - set(labels["site"]))
    if unknown:
        raise InputError(
            f"{data / 'labels.csv'} has no site {', '.join(unknown)}; its sites are "
            f"{', '.join(sorted(set(labels['site'])))}"
        )
    homes = {}
    for site in sites:
        own_split = split[(split["site"] == site) & (split["split"] != "external")]
        own = labels[labels["site"] == site].merge(own_split[["patient_id", "site"]])
        out = dest / site / NODE_DIR / "data"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for rel in own["image"]:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(data / rel, out / rel)
        own.to_csv(out / "labels.csv", index=False, lineterminator="\n")
        own_split.to_csv(out / "split.csv", index=False, lineterminator="\n")
        homes[site] = dest / site
    return homes


__all__ = ["partition_export"]
