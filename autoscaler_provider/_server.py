"""Serving the CloudProvider: mutual TLS by default (its files reloaded when they change), the gRPC health
service and reflection."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ._cloud_provider import CloudProviderService, request_decoder
from ._proto import externalgrpc_pb2

log = logging.getLogger(__name__)

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

SERVICE_NAME = externalgrpc_pb2.DESCRIPTOR.services_by_name["CloudProvider"].full_name
#: The client's responses must stay under 4 MiB; requests are small.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
#: glibc's default threshold: blocks at least this large are mapped on their own and unmapped when freed.
_MMAP_THRESHOLD_BYTES = 128 * 1024


def pin_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at its default, so that large request buffers go back to the system.

    By default glibc raises the threshold to the size of each large mapped block it frees, so after a few
    large requests (a DeleteNodes with thousands of nodes, a megabyte of id) blocks that size come from the
    heap arenas of the threads that handled them and stay resident there: over 10,000 fuzzed requests the
    server's RSS grew by 15-25% and stayed (bench/grpc_fuzz.py); pinned, +0.3%. Setting the threshold turns
    the adjustment off. Process-wide and harmless for the rest; does nothing where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))


class TLSConfigError(ValueError):
    """The TLS settings are incomplete or unreadable."""


@dataclass(frozen=True)
class TLSFiles:
    """The server's certificate and key, and the CA that client certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(key, certificate, client CA), checked: the key must be the certificate's, the CA a certificate."""
        try:
            key, cert, ca = self.key.read_bytes(), self.cert.read_bytes(), self.client_ca.read_bytes()
        except OSError as error:
            raise TLSConfigError(f"reading the gRPC TLS files: {error}") from None
        try:
            public = serialization.load_pem_private_key(key, password=None).public_key()
            certificate = x509.load_pem_x509_certificate(cert)
            x509.load_pem_x509_certificates(ca)
        except (ValueError, TypeError) as error:
            raise TLSConfigError(f"the gRPC TLS files are not PEM keys and certificates: {error}") from None
        if certificate.public_key().public_bytes(*_SPKI) != public.public_bytes(*_SPKI):
            raise TLSConfigError(f"the gRPC key {self.key} is not the key of the certificate {self.cert}")
        return key, cert, ca

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when any of the files is replaced (a Secret volume swaps a symlink: inode and time)."""
        stamps = []
        for path in (self.cert, self.key, self.client_ca):
            try:
                stat = os.stat(path)
            except OSError:
                stamps.append((0, 0, 0))
            else:
                stamps.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that require and verify a client certificate (mutual TLS), read again from the
        files at the next handshake after any of them changed: a rotated certificate or client CA applies to
        new connections without a restart. Files that do not make a valid set (half-written, a key that is
        not the certificate's) are not taken: the last good ones stay, and the problem is logged once."""
        key, cert, ca = self.read()
        lock = threading.Lock()
        state = {"stamp": self._stamp(), "refused": None}

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            stamp = self._stamp()
            with lock:
                if stamp == state["stamp"]:
                    return None
                try:
                    key, cert, ca = self.read()
                except TLSConfigError as error:
                    if state["refused"] != stamp:
                        log.warning("gRPC TLS files changed but are not usable (keeping the previous ones): %s", error)
                        state["refused"] = stamp
                    return None
                state["stamp"] = stamp
            log.info("gRPC TLS files changed: serving new connections with the new certificate and client CA")
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        return grpc.dynamic_ssl_server_credentials(
            grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca),
            fetch,  # type: ignore[arg-type]  # gRPC takes None as "unchanged"; its stubs do not say so
            require_client_authentication=True,
        )


def _method_handlers(service: CloudProviderService) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The CloudProvider's handlers, as the generated add_CloudProviderServicer_to_server makes them but for
    the requests' decoding: one that is not a valid message reaches the handler, which answers
    INVALID_ARGUMENT (gRPC itself would answer INTERNAL, which says the server is at fault)."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in externalgrpc_pb2.DESCRIPTOR.services_by_name["CloudProvider"].methods:
        request = getattr(externalgrpc_pb2, method.input_type.name)
        response = getattr(externalgrpc_pb2, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(service, method.name),
            request_deserializer=request_decoder(request),
            response_serializer=response.SerializeToString,
        )
    return handlers


class ProviderServer:
    """A gRPC server with the CloudProvider, health and reflection services, on one address."""

    def __init__(self, service: CloudProviderService, address: str, *, tls: TLSFiles | None, workers: int = 16):
        if tls is None:
            log.warning(
                "serving the cluster-autoscaler provider WITHOUT TLS on %s: anyone who can reach it can "
                "create and delete machines",
                address,
            )
        pin_mmap_threshold()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(workers, thread_name_prefix="grpc"),
            options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES)],
        )
        handlers = _method_handlers(service)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        self._server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        if tls is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, tls.credentials())
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        self.address = address

    def start(self) -> None:
        """Start serving and report SERVING."""
        self._server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        log.info("cluster-autoscaler provider listening on %s", self.address)

    def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING and stop, letting calls in flight finish within ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
