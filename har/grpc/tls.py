"""TLS for the gRPC server, from PEM files named by settings (off unless a certificate is set).

``HAR_GRPC_TLS_CERT`` (certificate chain) and ``HAR_GRPC_TLS_KEY`` (its private key)
switch the gRPC port to TLS only; ``HAR_GRPC_TLS_CLIENT_CA`` additionally requires
every client to present a certificate signed by one of those CAs (mutual TLS).

HTTP TLS is BentoML's own: ``bentoml serve service:HARService --ssl-certfile CERT
--ssl-keyfile KEY`` (see the README).

The files are read once, at start-up (:meth:`GrpcTLS.from_settings`, so a missing or
non-PEM file stops the server before it serves); the ``grpc.ServerCredentials`` are
made by :meth:`GrpcTLS.server_credentials` on the worker that binds the port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc

from har.settings import Settings

_PEM_MARKER = b"-----BEGIN "


class TLSConfigError(ValueError):
    """The TLS settings cannot be used (one of a pair missing, a file unreadable or not PEM)."""


def read_pem(path: Path, setting: str) -> bytes:
    """The bytes of a PEM file.

    Raises:
        TLSConfigError: it cannot be read or holds no PEM block, naming ``setting``.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{setting}: cannot read {path}: {exc}") from exc
    if _PEM_MARKER not in data:
        raise TLSConfigError(f"{setting}: {path} is not a PEM file (no '-----BEGIN' line)")
    return data


@dataclass(frozen=True)
class GrpcTLS:
    """The gRPC server's key pair and optional client CA, as PEM bytes.

    Attributes:
        cert_chain: the server's certificate chain (PEM).
        private_key: its private key (PEM).
        client_ca: CA certificates for client certificates (PEM), or ``None``: clients
            are not asked for one.
    """

    cert_chain: bytes
    private_key: bytes = field(repr=False)
    client_ca: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GrpcTLS | None:
        """Read ``HAR_GRPC_TLS_CERT``/``_KEY``/``_CLIENT_CA``; ``None`` when TLS is off.

        Raises:
            TLSConfigError: only one of certificate and key is set, the client CA is set
                without them, or a file is unreadable or not PEM.
        """
        cert, key, ca = settings.grpc_tls_cert, settings.grpc_tls_key, settings.grpc_tls_client_ca
        if cert is None and key is None:
            if ca is not None:
                raise TLSConfigError(
                    "HAR_GRPC_TLS_CLIENT_CA needs HAR_GRPC_TLS_CERT and HAR_GRPC_TLS_KEY"
                )
            return None
        if cert is None or key is None:
            missing = "HAR_GRPC_TLS_KEY" if key is None else "HAR_GRPC_TLS_CERT"
            raise TLSConfigError(f"gRPC TLS needs both a certificate and a key; {missing} is unset")
        return cls(
            cert_chain=read_pem(cert, "HAR_GRPC_TLS_CERT"),
            private_key=read_pem(key, "HAR_GRPC_TLS_KEY"),
            client_ca=read_pem(ca, "HAR_GRPC_TLS_CLIENT_CA") if ca is not None else None,
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``server.add_secure_port`` (client certificates required iff a CA)."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def grpc_server_credentials(tls: GrpcTLS | None) -> grpc.ServerCredentials | None:
    """``tls``'s server credentials, or ``None`` (plaintext) when TLS is off."""
    return tls.server_credentials() if tls is not None else None


__all__ = ["GrpcTLS", "TLSConfigError", "grpc_server_credentials", "read_pem"]
