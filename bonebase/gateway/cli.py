"""`bonebase gateway …`: the hospital gateway (DICOM C-STORE and STOW-RS intake, on-site
de-identification, delivery to the consortium). See docs/gateway.md."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bonebase.cli_common import console, err
from bonebase.errors import BonebaseError

gateway_app = typer.Typer(
    help="The hospital gateway: receives studies from the PACS (DICOM C-STORE, DICOMweb STOW-RS), "
    "de-identifies them on site and delivers them to the consortium. Its state lives in "
    "BONEBASE_HOME/gateway; identified images never leave it.",
    no_args_is_help=True,
)


def _home(*, create: bool = False):
    """The settings and the gateway's home; only the commands that set a gateway up (allow,
    serve) create it: the others read state and say where they looked."""
    from bonebase.config import get_settings
    from bonebase.gateway.home import GatewayHome

    settings = get_settings()
    if not create and not (settings.home / "gateway").is_dir():
        raise BonebaseError(f"no gateway in {settings.describe_home()}: set BONEBASE_HOME to "
                            "the gateway's home, or set one up with `bonebase gateway allow` "
                            "and `bonebase gateway serve`")
    settings.ensure_home()
    return settings, GatewayHome.under(settings.home)


def _store(url: str | None, settings):
    if not url:
        return None
    from bonebase.storage import open_store

    return open_store(url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)


@gateway_app.command("serve")
def serve(
    site: Annotated[str, typer.Option("--site", help="The hospital's site code, as registered "
                                      "with the consortium (e.g. HX).")],
    ae_title: Annotated[str, typer.Option("--ae-title", help="The gateway's own AE title, "
                                          "which the PACS calls.")] = "BONEBASE",
    port: Annotated[int, typer.Option("--port", help="DICOM port (C-STORE, C-ECHO).")] = 11112,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    deliver_to: Annotated[str | None, typer.Option(
        "--deliver-to", envvar="BONEBASE_GATEWAY_DELIVER_URL",
        help="The consortium's object store, s3://bucket/prefix (credentials from the usual "
        "AWS_* variables, endpoint from BONEBASE_S3_ENDPOINT_URL); the site's batches go under "
        "PREFIX/SITE/. Without it, batches wait in the outbox.")] = None,
    study_timeout: Annotated[float, typer.Option(
        "--study-timeout", help="Seconds without a new instance after which a study is "
        "complete.")] = 60.0,
    batch_wait: Annotated[float, typer.Option(
        "--batch-wait", help="Seconds complete studies gather before they leave as one "
        "submission (each submission costs the consortium seconds whatever its size).")] = 0.0,
    receipt_wait: Annotated[float, typer.Option(
        "--receipt-wait", help="While the consortium has not yet sent the receipt of this "
        "gateway's last batch, complete studies wait for it, at most this many seconds, and "
        "then leave together: batches grow with the consortium's latency. 0: do not wait.")
    ] = 60.0,
    max_batch_studies: Annotated[int, typer.Option(
        "--max-batch-studies", min=1, help="Most studies in one submission; that many complete "
        "studies leave at once.")] = 500,
    max_batch_mb: Annotated[float, typer.Option(
        "--max-batch-mb", min=1, help="Most MiB (as received) in one submission; that much "
        "leaves at once.")] = 2048.0,
    keep_days: Annotated[float, typer.Option(
        "--keep-days", help="Days the identified originals of a sent study stay in the spool "
        "for re-sends.")] = 30.0,
    max_associations: Annotated[int, typer.Option(
        "--max-associations", help="Most DICOM associations at once; more are refused as "
        "'local limit exceeded'.")] = 8,
    spool_max_mb: Annotated[float | None, typer.Option(
        "--spool-max-mb", help="Largest spool in MiB; over it C-STORE answers 'out of "
        "resources' (0xA700) and STOW-RS lists the instance as failed with that reason.")] = None,
    stow_port: Annotated[int | None, typer.Option(
        "--stow-port", help="Port of the DICOMweb STOW-RS endpoint (POST /dicomweb/studies); "
        "needs BONEBASE_GATEWAY_TOKEN. Off when not given.")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate: DICOM "
                                                  "over TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of "
                                                 "--tls-cert.")] = None,
    tls_ca: Annotated[Path | None, typer.Option("--tls-ca", help="PEM CA: peers must present a "
                                                "certificate it signed.")] = None,
    commit: Annotated[str, typer.Option(
        "--commit", hidden=True, help="How received instances are made durable before success "
        "is answered: auto, journal, syncfs or each (bonebase/gateway/journal.py; "
        "benchmarks/gateway.py compares them).")] = "auto",
) -> None:
    """Run the gateway: receive, de-identify and deliver until stopped (Ctrl-C or SIGTERM).

    The DICOM Storage SCP accepts radiographs (CR, DX), CT, MR and secondary captures from the AE titles allowed with `bonebase gateway allow`. A study is complete after --study-timeout seconds without a new instance; it is then joined with its row of the clinical/ folder, de-identified on site and queued for delivery.
    """
    from bonebase.gateway import peers
    from bonebase.gateway.scp import ScpConfig, StorageSCP
    from bonebase.gateway.spool import Spool
    from bonebase.gateway.studies import BatchPolicy
    from bonebase.gateway.work import WorkConfig, work_once

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    from bonebase.gateway.journal import MODES

    if commit not in MODES:
        raise BonebaseError(f"--commit {commit}: choose one of {', '.join(MODES)}")
    settings, home = _home(create=True)
    peers.check_ae(ae_title)
    cfg = WorkConfig(site=site, secret=settings.consortium_secret(), uid_root=settings.uid_root,
                     study_timeout=study_timeout, keep_days=keep_days,
                     max_pixels=settings.max_pixels,
                     batch=BatchPolicy(batch_wait=batch_wait, receipt_wait=receipt_wait,
                                       max_studies=max_batch_studies,
                                       max_bytes=int(max_batch_mb * 2**20)))
    _check_site(site)
    store = _store(deliver_to, settings)
    spool = Spool(home, max_bytes=int(spool_max_mb * 2**20) if spool_max_mb else None,
                  commit=commit)
    spool.recover()  # what a killed receive left was never acknowledged
    scp = StorageSCP(spool, ScpConfig(ae_title=ae_title, host=host, port=port,
                                      max_associations=max_associations, tls_cert=tls_cert,
                                      tls_key=tls_key, tls_ca=tls_ca))
    try:
        scp.start()
    except OSError as exc:
        raise BonebaseError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another "
                            "--port or stop what uses it") from None
    stow = None
    if stow_port is not None:
        from bonebase.gateway.stow import start_stow

        stow = start_stow(spool, host=host, port=stow_port,
                          token=os.environ.get("BONEBASE_GATEWAY_TOKEN", ""))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"gateway {ae_title} of site {site} listening on {host}:{scp.port}"
                  + (f", STOW-RS on port {stow_port}" if stow else "")
                  + (f", delivering to {deliver_to}" if store else ", no --deliver-to: "
                     "batches wait in the outbox"), highlight=False, markup=False)
    try:
        while not stop.is_set():
            try:
                work_once(spool, cfg, store)
            except BonebaseError as exc:  # the consortium or the disk: reported, tried again
                err.print(f"gateway: {exc}", highlight=False, markup=False)
            stop.wait(min(1.0, max(0.1, study_timeout / 4)))
    except KeyboardInterrupt:
        pass
    finally:
        scp.stop()
        if stow is not None:
            stow.shutdown()


def _check_site(site: str) -> None:
    """Refuse a site code the de-identification engine would refuse, before listening."""
    from bonebase.dicom.deid import Deidentifier

    Deidentifier(b"x" * 32).pseudonym(site, "probe")


@gateway_app.command("allow")
def allow(
    ae_title: Annotated[str, typer.Argument(help="The calling AE title of the PACS or modality.")],
    host: Annotated[str | None, typer.Option("--host", help="Accept it from this IP address "
                                             "only.")] = None,
) -> None:
    """Allow a calling AE title (optionally from one address) to send to the gateway."""
    from bonebase.gateway import peers

    _, home = _home(create=True)
    peer = peers.allow(home.peers_file, ae_title, host)
    console.print(f"allowed {peer.ae_title}" + (f" from {peer.host}" if peer.host else
                                                 " from any address"), highlight=False, markup=False)


@gateway_app.command("deny")
def deny(ae_title: Annotated[str, typer.Argument(help="The calling AE title to remove.")]) -> None:
    """Remove a calling AE title from the allowed peers (takes effect at its next association)."""
    from bonebase.gateway import peers

    _, home = _home()
    if not peers.deny(home.peers_file, ae_title):
        raise BonebaseError(f"{ae_title.strip()} was not an allowed peer; "
                            "`bonebase gateway peers` lists them")
    console.print(f"denied {ae_title.strip()}", highlight=False, markup=False)


@gateway_app.command("peers")
def list_peers() -> None:
    """List the calling AE titles allowed to send to the gateway."""
    from bonebase.gateway import peers

    _, home = _home()
    table = Table("AE title", "host")
    found = peers.load(home.peers_file)
    for p in found:
        table.add_row(escape(p.ae_title), escape(p.host or "any"))
    console.print(table if found else "no peers allowed yet: `bonebase gateway allow AE_TITLE`")


@gateway_app.command("flush")
def flush(
    site: Annotated[str, typer.Option("--site", help="The hospital's site code.")],
    deliver_to: Annotated[str | None, typer.Option(
        "--deliver-to", envvar="BONEBASE_GATEWAY_DELIVER_URL",
        help="The consortium's object store (as for serve); without it, batches wait.")] = None,
) -> None:
    """Treat every study being received as complete now: de-identify, batch and deliver it."""
    from bonebase.gateway.spool import Spool
    from bonebase.gateway.work import WorkConfig, work_once

    settings, home = _home()
    spool = Spool(home)
    marked = spool.flush()
    cfg = WorkConfig(site=site, secret=settings.consortium_secret(), uid_root=settings.uid_root,
                     max_pixels=settings.max_pixels)
    done = work_once(spool, cfg, _store(deliver_to, settings), wait=True)
    console.print(f"{marked} studies complete; {done.get('batches', 0)} batches made, "
                  f"{done.get('sent', 0)} sent", highlight=False, markup=False)


@gateway_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show each study on the gateway: instances, bytes, state, and what to do when it waits.

    States: receiving, needs clinical data, held on site (a data steward reviews it), queued, sent, ingested, quarantined (with the consortium's reason), failed centrally (with its message).
    """
    import json

    from bonebase.gateway.spool import Spool

    _, home = _home()
    rows = Spool(home).studies()
    if as_json:
        fields = ("key", "instances", "bytes", "first_seen", "last_seen", "state", "detail",
                  "batch")
        print(json.dumps([{f: r[f] for f in fields} for r in rows], indent=2))
        return
    if not rows:
        console.print("no studies received yet")
        return
    table = Table("study", "received", "instances", "MB", "state", "batch", "detail")
    for r in rows:
        table.add_row(r["key"][:12], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["first_seen"])),
                      str(r["instances"]), f"{r['bytes'] / 2**20:.1f}", r["state"],
                      r["batch"] or "", escape(r["detail"] or ""))
    console.print(table)


@gateway_app.command("ingest-deliveries")
def ingest_deliveries(
    deliveries_url: Annotated[str, typer.Argument(
        help="The delivery store the gateways send to, s3://bucket/prefix.")],
    every: Annotated[float | None, typer.Option(
        "--every", help="Poll again every SECONDS until stopped; once when not given.")] = None,
) -> None:
    """Consortium side: ingest the batches the gateways delivered and send their receipts back.

    Runs the Prefect flow `gateway-deliveries` (flows/gateway.py), which runs the ordinary ingest flow on each batch that is ready and has no receipt yet.
    """
    from bonebase.cli_common import db_url, prefect_env

    db_url()  # the database must be migrated: one line that says so otherwise
    prefect_env()
    from bonebase.flow_run import in_process
    from flows.gateway import gateway_deliveries

    while True:
        with in_process():
            count = gateway_deliveries(deliveries_url)
        console.print(f"{count} batches ingested", highlight=False, markup=False)
        if every is None:
            return
        time.sleep(every)


def main() -> None:
    try:
        gateway_app(standalone_mode=False)
    except BonebaseError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(1)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
