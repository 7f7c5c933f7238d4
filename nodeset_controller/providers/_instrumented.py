"""Metrics around every cloud call, whatever the provider behind it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .. import metrics
from ._machine import ErrorClass, Machine, MachineProvider, MachineSpec, ProviderError

_T = TypeVar("_T")


class InstrumentedProvider:
    """A MachineProvider that counts and times the calls it passes to ``inner``, labelled by provider name."""

    def __init__(self, inner: MachineProvider, provider: str) -> None:
        self.inner = inner
        self.provider = provider

    def _call(self, operation: str, call: Callable[[], _T]) -> _T:
        started = time.monotonic()
        result = "success"
        try:
            return call()
        except ProviderError as error:
            result = str(error.error_class)
            raise
        except Exception:
            result = str(ErrorClass.OTHER)
            raise
        finally:
            metrics.MACHINE_OPERATIONS.labels(self.provider, operation, result).inc()
            metrics.MACHINE_OPERATION_DURATION.labels(self.provider, operation).observe(time.monotonic() - started)

    def create(self, spec: MachineSpec) -> Machine:
        """Create (or find) the machine, counted as ``create``."""
        return self._call("create", lambda: self.inner.create(spec))

    def get(self, name: str) -> Machine | None:
        """Look the machine up, counted as ``get``."""
        return self._call("get", lambda: self.inner.get(name))

    def list(self) -> list[Machine]:
        """List this cluster's machines, counted as ``list``."""
        return self._call("list", self.inner.list)

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy the machine, counted as ``destroy``."""
        self._call("destroy", lambda: self.inner.destroy(name, machine_id))

    def validate(self) -> str:
        """Check the NodeClass against the provider, counted as ``validate``."""
        return self._call("validate", self.inner.validate)
