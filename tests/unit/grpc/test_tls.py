"""har.grpc.tls: gRPC server credentials from PEM files, checked on a real ``grpc.aio`` server
with certificates made by the test (``openssl``)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from har.grpc.tls import GrpcTLS, TLSConfigError, grpc_server_credentials
from har.settings import Settings
from tests.helpers.tls import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_tls_is_off_without_a_certificate():
    assert GrpcTLS.from_settings(Settings()) is None
    assert grpc_server_credentials(None) is None


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"grpc_tls_cert": "cert"}, "HAR_GRPC_TLS_KEY is unset"),
        ({"grpc_tls_key": "key"}, "HAR_GRPC_TLS_CERT is unset"),
        ({"grpc_tls_client_ca": "ca"}, "HAR_GRPC_TLS_CLIENT_CA needs"),
        ({"grpc_tls_cert": "cert", "grpc_tls_key": "missing"}, "HAR_GRPC_TLS_KEY: cannot read"),
        ({"grpc_tls_cert": "notpem", "grpc_tls_key": "key"}, "HAR_GRPC_TLS_CERT: .* not a PEM"),
    ],
)
def test_unusable_tls_settings_fail_at_start_naming_the_setting(pki, tmp_path, fields, needle):
    files = {"cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca}
    (tmp_path / "notpem").write_text("hello")
    values = {k: files.get(v, tmp_path / v) for k, v in fields.items()}
    with pytest.raises(TLSConfigError, match=needle):
        GrpcTLS.from_settings(Settings(**values))


def test_private_key_stays_out_of_repr(pki):
    tls = GrpcTLS.from_settings(
        Settings(grpc_tls_cert=pki.server_cert, grpc_tls_key=pki.server_key)
    )
    assert tls is not None and b"PRIVATE KEY" in tls.private_key
    assert "PRIVATE" not in repr(tls)


async def _health_over(server_tls: GrpcTLS, channel_credentials) -> object:
    """Status of a health check through a channel (``None``: plaintext), or the error code."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", server_tls.server_credentials())
    await server.start()
    target = f"127.0.0.1:{port}"
    try:
        channel = (
            grpc.aio.insecure_channel(target)
            if channel_credentials is None
            else grpc.aio.secure_channel(target, channel_credentials)
        )
        async with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return reply.status
    finally:
        await server.stop(None)


def test_grpc_tls_server_accepts_tls_with_the_ca_and_refuses_plaintext(pki, tmp_path):
    tls = GrpcTLS.from_settings(
        Settings(grpc_tls_cert=pki.server_cert, grpc_tls_key=pki.server_key)
    )
    assert tls is not None and tls.client_ca is None
    ca = pki.ca.read_bytes()
    serving = health_pb2.HealthCheckResponse.SERVING
    assert asyncio.run(_health_over(tls, grpc.ssl_channel_credentials(ca))) == serving
    assert asyncio.run(_health_over(tls, None)) == grpc.StatusCode.UNAVAILABLE
    # a client that trusts another CA refuses the server
    untrusted = grpc.ssl_channel_credentials(make_pki(tmp_path).ca.read_bytes())
    assert asyncio.run(_health_over(tls, untrusted)) == grpc.StatusCode.UNAVAILABLE


def test_grpc_mutual_tls_needs_a_client_certificate(pki):
    tls = GrpcTLS.from_settings(
        Settings(
            grpc_tls_cert=pki.server_cert, grpc_tls_key=pki.server_key, grpc_tls_client_ca=pki.ca
        )
    )
    assert tls is not None and tls.client_ca is not None
    ca = pki.ca.read_bytes()
    with_cert = grpc.ssl_channel_credentials(
        ca, private_key=pki.client_key.read_bytes(), certificate_chain=pki.client_cert.read_bytes()
    )
    serving = health_pb2.HealthCheckResponse.SERVING
    assert asyncio.run(_health_over(tls, with_cert)) == serving
    assert asyncio.run(_health_over(tls, grpc.ssl_channel_credentials(ca))) == (
        grpc.StatusCode.UNAVAILABLE
    )
