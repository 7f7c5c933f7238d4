"""The gRPC server speaks mutual TLS: plaintext and certificates from another CA are refused."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc
from kube_node._grpc import make_grpc_certificates
from tests.conftest import Provider, secure_channel

pytestmark = pytest.mark.controlplane


def call(channel: grpc.Channel) -> pb.NodeGroupsResponse:
    with channel:
        return externalgrpc_pb2_grpc.CloudProviderStub(channel).NodeGroups(pb.NodeGroupsRequest(), timeout=5)


def test_the_right_client_certificate_works(provider: Provider) -> None:
    certs = provider.certificates
    assert call(secure_channel(provider.address, certs.ca, certs.client.cert, certs.client.key)) is not None


def test_a_plaintext_client_is_refused(provider: Provider) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(grpc.insecure_channel(provider.address))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_without_a_certificate_is_refused(provider: Provider) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(secure_channel(provider.address, provider.certificates.ca))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_certificate_from_another_ca_is_refused(provider: Provider, tmp_path: Path) -> None:
    stranger = make_grpc_certificates(tmp_path / "stranger")
    with pytest.raises(grpc.RpcError) as caught:
        call(secure_channel(provider.address, provider.certificates.ca, stranger.client.cert, stranger.client.key))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def fresh_channel(address: str, ca: Path, cert: Path, key: Path) -> grpc.Channel:
    """A TLS channel with connections of its own (no subchannel shared with an earlier channel), so each one
    makes a new handshake."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(), private_key=key.read_bytes(), certificate_chain=cert.read_bytes()
    )
    return grpc.secure_channel(address, credentials, options=[("grpc.use_local_subchannel_pool", 1)])


def replace(path: Path, content: bytes) -> None:
    """Swap the file's content at once, as a Secret volume does."""
    staged = path.with_suffix(".new")
    staged.write_bytes(content)
    staged.replace(path)


def test_rotated_certificates_and_client_ca_apply_to_new_connections_without_a_restart(
    provider: Provider, tmp_path: Path
) -> None:
    old = provider.certificates
    served = old.server_tls
    # Copies of what is served now, to connect with after the files have changed.
    kept = make_grpc_certificates(tmp_path / "kept")
    for source, target in ((old.ca, kept.ca), (old.client.cert, kept.client.cert), (old.client.key, kept.client.key)):
        target.write_bytes(source.read_bytes())
    assert call(fresh_channel(provider.address, kept.ca, kept.client.cert, kept.client.key)) is not None

    new = make_grpc_certificates(tmp_path / "new")
    replace(served.key, new.server.key.read_bytes())
    replace(served.cert, new.server.cert.read_bytes())
    replace(served.client_ca, new.ca.read_bytes())

    # A client of the new CA, trusting the new server certificate: served.
    assert call(fresh_channel(provider.address, new.ca, new.client.cert, new.client.key)) is not None
    # The old client certificate no longer chains to the client CA, and the old CA does not sign the server.
    with pytest.raises(grpc.RpcError) as caught:
        call(fresh_channel(provider.address, new.ca, kept.client.cert, kept.client.key))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as caught:
        call(fresh_channel(provider.address, kept.ca, new.client.cert, new.client.key))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_files_that_are_not_a_valid_set_are_not_taken_and_the_last_good_ones_stay(
    provider: Provider, tmp_path: Path
) -> None:
    certs = provider.certificates
    other = make_grpc_certificates(tmp_path / "other")
    replace(certs.server_tls.key, other.server.key.read_bytes())  # a key that is not the certificate's
    assert call(fresh_channel(provider.address, certs.ca, certs.client.cert, certs.client.key)) is not None
    replace(certs.server_tls.cert, b"-----BEGIN CERTIFICATE-----\nhalf")  # half-written
    assert call(fresh_channel(provider.address, certs.ca, certs.client.cert, certs.client.key)) is not None
