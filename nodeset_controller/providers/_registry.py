"""Which MachineProvider serves a NodeClass, built from the NodeClass and its credentials Secret."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..api import NodeClass
from ..kube import SECRETS, ApiError, KubeClient, WriteFence
from ._instrumented import InstrumentedProvider
from ._local import LocalMachines, LocalProvider
from ._machine import ErrorClass, Machine, MachineProvider, MachineSpec, ProviderError
from ._simulator import SimulatorCloud, SimulatorProvider

log = logging.getLogger(__name__)

#: How long a provider built from a Secret is reused before the Secret is read again (credential rotation).
CREDENTIALS_TTL = 300.0

LibcloudFactory = Callable[[NodeClass, dict[str, str], str], MachineProvider]


class ProviderRegistry:
    """Builds and caches one provider per NodeClass generation (the NodeClass's uid and generation: metadata
    and status writes leave it, a spec change or a NodeClass deleted and created again makes a new one). If
    ``client`` is fenced (a leader-elected process), every machine create and destroy is put to the same fence
    first: none starts unless the process leads at that moment."""

    def __init__(
        self,
        client: KubeClient,
        cluster: str,
        *,
        simulator: SimulatorCloud | None = None,
        local: LocalMachines | None = None,
        libcloud_factory: LibcloudFactory | None = None,
    ) -> None:
        self._client = client
        self._cluster = cluster
        self._simulator = simulator
        self._local = local
        self._libcloud_factory = libcloud_factory
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float, MachineProvider]] = {}

    def provider_for(self, nodeclass: NodeClass) -> MachineProvider:
        """The provider for ``nodeclass``. Raises ProviderError (InvalidConfiguration) when it cannot be built:
        no simulator configured, a missing Secret, an unknown libcloud provider."""
        name = nodeclass.metadata.name
        meta = nodeclass.metadata
        version = f"{meta.uid}/{meta.generation}" if meta.generation is not None else meta.resource_version or ""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] == version and now - cached[1] < CREDENTIALS_TTL:
                return cached[2]
        provider: MachineProvider = InstrumentedProvider(self._build(nodeclass), nodeclass.spec.provider)
        fence = self._client.fence
        if fence is not None:
            provider = FencedProvider(provider, fence)
        with self._lock:
            self._cache[name] = (version, now, provider)
        return provider

    def _build(self, nodeclass: NodeClass) -> MachineProvider:
        if nodeclass.spec.provider == "simulator":
            if self._simulator is None:
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name} uses the simulator, but this kube-node runs without one "
                    "(start it with --simulator-dir)",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="NO_SIMULATOR",
                )
            return SimulatorProvider(self._simulator, nodeclass, self._cluster)
        if nodeclass.spec.provider == "local":
            if self._local is None:
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name} uses local machines, but this kube-node runs without "
                    "them (start it with --local-machines-dir)",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="NO_LOCAL_MACHINES",
                )
            return LocalProvider(self._local, nodeclass, self._cluster)
        if self._libcloud_factory is None:
            raise ProviderError(
                f"NodeClass {nodeclass.metadata.name}: provider {nodeclass.spec.provider!r} is not available",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="PROVIDER_UNAVAILABLE",
            )
        return self._libcloud_factory(nodeclass, self._credentials(nodeclass), self._cluster)

    def _credentials(self, nodeclass: NodeClass) -> dict[str, str]:
        ref = nodeclass.spec.credentials_secret_ref
        if ref is None:
            return {}
        try:
            secret = self._client.get(SECRETS, ref.name, ref.namespace)
        except ApiError as error:
            if error.not_found:
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name}: credentials Secret {ref.namespace}/{ref.name} not found",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="CREDENTIALS_NOT_FOUND",
                ) from None
            raise ProviderError(
                f"NodeClass {nodeclass.metadata.name}: reading Secret {ref.namespace}/{ref.name}: {error.reason}",
                error_class=ErrorClass.TRANSIENT,
                code="CREDENTIALS_UNREADABLE",
            ) from None
        data = {
            key: _decoded(nodeclass, ref.namespace, ref.name, key, value)
            for key, value in (secret.get("data") or {}).items()
        }
        data.update(secret.get("stringData") or {})
        return data


class FencedProvider:
    """A MachineProvider whose creates and destroys are refused (NotLeaderError, before any cloud call) unless
    ``fence`` allows them at that moment; reads pass."""

    def __init__(self, inner: MachineProvider, fence: WriteFence) -> None:
        self.inner = inner
        self._fence = fence

    def create(self, spec: MachineSpec) -> Machine:
        """Create (or find) the machine, if this process leads now."""
        self._fence.check(f"create machine {spec.name}")
        return self.inner.create(spec)

    def get(self, name: str) -> Machine | None:
        """Look the machine up."""
        return self.inner.get(name)

    def list(self) -> list[Machine]:
        """List this cluster's machines."""
        return self.inner.list()

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy the machine, if this process leads now."""
        self._fence.check(f"destroy machine {name}")
        self.inner.destroy(name, machine_id)

    def validate(self) -> str:
        """Check the NodeClass against the provider (reads only)."""
        return self.inner.validate()


def _decoded(nodeclass: NodeClass, namespace: str, name: str, key: str, value: Any) -> str:
    """One value of a Secret's ``data`` as text. Credentials are text to every libcloud driver, so a value that
    is not base64 of UTF-8 (a binary key file put in by mistake, say) makes this NodeClass's configuration
    invalid. A ProviderError keeps the failure to this NodeClass (the sweep goes on to the next), and it names
    the Secret and key only: the value, and any byte of it that a decode error would quote, is the credential,
    so the decode error is not even kept as the ProviderError's context."""
    text: str | None = None
    try:
        text = base64.b64decode(str(value), validate=True).decode()
    except binascii.Error:
        problem = "is not valid base64"
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    if text is not None:
        return text
    raise ProviderError(
        f"NodeClass {nodeclass.metadata.name}: credentials Secret {namespace}/{name} key {key!r} {problem}; "
        "put the credential in as text (kubectl create secret generic --from-literal, or stringData)",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="INVALID_CREDENTIALS",
    )
