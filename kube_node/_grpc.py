"""Serving the gRPC server for the cluster-autoscaler next to the controllers, and the files a client needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from autoscaler_provider import CloudProviderService, ProviderServer, TLSFiles
from nodeset_controller.controllers import Manager

from .controlplane._certs import CertificateAuthority, KeyPair


def serve_grpc(
    manager: Manager, address: str, tls: TLSFiles | None, *, may_write: Callable[[], bool] = lambda: True
) -> ProviderServer:
    """Start the CloudProvider on ``address`` over the Manager's caches; it accepts writes while
    ``may_write`` says so (while this process leads). Its writes of NodeSets' sizes go through the Manager's
    NodeSetScaler, the one the controllers use."""
    service = CloudProviderService(
        manager.client, manager.nodesets, manager.nodes, manager.nodeclasses, may_write=may_write, scaler=manager.scaler
    )
    server = ProviderServer(service, address, tls=tls)
    server.start()
    return server


@dataclass(frozen=True)
class GrpcCertificates:
    """A CA, the gRPC server's serving certificate and a client certificate for the cluster-autoscaler."""

    ca: Path
    server: KeyPair
    client: KeyPair

    @property
    def server_tls(self) -> TLSFiles:
        """What the gRPC server serves with: its pair, and the CA its clients must chain to."""
        return TLSFiles(cert=self.server.cert, key=self.server.key, client_ca=self.ca)


def make_grpc_certificates(directory: Path, host: str = "127.0.0.1") -> GrpcCertificates:
    """Generate a fresh CA with a serving certificate for ``host`` and a client certificate, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("kube-node-provider-ca")
    ca_path = ca.write(directory / "ca.crt")
    dns_names = ("localhost",) if host in ("127.0.0.1", "localhost") else ("localhost", host)
    server = ca.issue(
        directory, "server", common_name=host, server=True, dns_names=dns_names, ip_addresses=("127.0.0.1",)
    )
    client = ca.issue(directory, "client", common_name="cluster-autoscaler", client=True)
    return GrpcCertificates(ca=ca_path, server=server, client=client)


def write_cloud_config(path: Path, address: str, certificates: GrpcCertificates | None) -> Path:
    """The cluster-autoscaler's --cloud-config for this gRPC server (mutual TLS when certificates are given)."""
    config: dict[str, str] = {"address": address, "grpc_timeout": "10s"}
    if certificates is not None:
        config |= {
            "cert": str(certificates.client.cert),
            "key": str(certificates.client.key),
            "cacert": str(certificates.ca),
        }
    path.write_text(yaml.safe_dump(config))
    return path
