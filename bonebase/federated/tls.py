"""TLS certificates for a federated deployment: a consortium CA and the SuperLink's server
certificate, made with the `cryptography` package.

For a trial or a test on one machine. In production the consortium's own PKI issues the
server certificate (docs/federated.md, 'TLS'); hospitals receive only `ca.crt`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bonebase.errors import BonebaseError

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"


@dataclass(frozen=True)
class Certificates:
    """Where the PEM files are: the server needs all three, a hospital only `ca`."""

    ca: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bonebase consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Only the owner may read a private key (created so, never world-readable in between).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_certificates(out: Path, *, hosts: list[str], days: int = 365) -> Certificates:
    """Make a CA and a server certificate valid for `hosts` (DNS names or IP addresses).

    Refuses to overwrite existing files: a new CA would lock every hospital out.
    """
    if not hosts:
        raise BonebaseError("Name at least one host for the server certificate (--host).")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)]
    existing = [p.name for p in paths if p.exists()]
    if existing:
        raise BonebaseError(
            f"{out} already holds {', '.join(existing)}; a new CA would lock out every "
            "hospital that trusts the old one. Choose another --out folder or remove them."
        )
    now = dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(minutes=5)  # clocks of hospitals drift
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("bonebase federated CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_subject_alt_names(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_cert(out / CA_CERT, ca_cert)
    _write_key(out / CA_KEY, ca_key)
    _write_cert(out / SERVER_CERT, server_cert)
    _write_key(out / SERVER_KEY, server_key)
    return Certificates(ca=out / CA_CERT, server_cert=out / SERVER_CERT,
                        server_key=out / SERVER_KEY)


def certificates_in(folder: Path) -> Certificates:
    """The server's certificates in `folder`, or an error that says how to make them."""
    certs = Certificates(
        ca=folder / CA_CERT, server_cert=folder / SERVER_CERT, server_key=folder / SERVER_KEY
    )
    missing = [p.name for p in (certs.ca, certs.server_cert, certs.server_key) if not p.is_file()]
    if missing:
        raise BonebaseError(
            f"{folder} lacks {', '.join(missing)}: make them with `bonebase federated certs "
            f"--out {folder} --host HOSTNAME`, or copy your PKI's files there under these names."
        )
    return certs
