"""A CloudProvider server over mutual TLS on the session's control plane, with kube-node's controllers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from autoscaler_provider import ProviderServer
from autoscaler_provider._proto import externalgrpc_pb2_grpc
from kube_node._provider import ProviderCertificates, make_provider_certificates, serve_provider
from nodeset_controller.controllers import Manager


@dataclass
class Provider:
    """The running server, a client stub over mutual TLS, and what they were made from."""

    server: ProviderServer
    stub: externalgrpc_pb2_grpc.CloudProviderStub
    channel: grpc.Channel
    certificates: ProviderCertificates
    address: str


def secure_channel(address: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> grpc.Channel:
    """A TLS channel trusting ``ca``, presenting ``cert``/``key`` when given."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(address, credentials)


@pytest.fixture
def provider(manager: Manager, tmp_path: Path) -> Iterator[Provider]:
    certificates = make_provider_certificates(tmp_path / "tls")
    server = serve_provider(manager, "127.0.0.1:0", certificates.server_tls)
    address = f"127.0.0.1:{server.port}"
    channel = secure_channel(address, certificates.ca, certificates.client.cert, certificates.client.key)
    try:
        yield Provider(server, externalgrpc_pb2_grpc.CloudProviderStub(channel), channel, certificates, address)
    finally:
        channel.close()
        server.stop(0)
