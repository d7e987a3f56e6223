"""Test certificates made on the spot with the ``openssl`` command (valid for 2 days).

A private CA, a server certificate for ``localhost`` / ``127.0.0.1`` and a client
certificate, all signed by it (EC P-256 keys, PEM files).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _signed(directory: Path, ca: Path, ca_key: Path, name: str, extensions: str) -> Path:
    """A key (``NAME.key``) and a certificate (``NAME.pem``) signed by ``ca``."""
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={name}")  # fmt: skip
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "2", "-out", cert, "-extfile", ext)  # fmt: skip
    return cert


def make_pki(directory: Path) -> Certificates:
    """A CA, a server and a client certificate in ``directory``."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=har-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    common = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    server = _signed(
        directory,
        ca,
        ca_key,
        "localhost",
        common + "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    client = _signed(directory, ca, ca_key, "client", common + "extendedKeyUsage=clientAuth\n")
    return Certificates(
        ca=ca,
        server_cert=server,
        server_key=directory / "localhost.key",
        client_cert=client,
        client_key=directory / "client.key",
    )
