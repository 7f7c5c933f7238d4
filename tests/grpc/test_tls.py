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
