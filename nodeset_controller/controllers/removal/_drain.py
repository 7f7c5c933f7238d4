"""Draining a Node before it is removed: cordon it, then evict its pods through the Eviction API.

Evictions honour PodDisruptionBudgets (the API server answers 429 while a budget forbids one). DaemonSet
pods and static pods' mirrors are left alone, as ``kubectl drain`` leaves them; pods that have finished need
nothing. A drain is a series of steps, one per reconcile: each step evicts what can be evicted now and
reports what is left, so nothing blocks a worker while a budget holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ...kube import PODS, ApiError, Informer, KubeClient, NodeRecord, PodRecord

log = logging.getLogger(__name__)


@dataclass
class DrainStep:
    """What one drain step found: pods still to go, and those whose eviction a budget refused."""

    remaining: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  #: pod -> the API server's reason

    @property
    def done(self) -> bool:
        """No pod that must leave is left on the Node."""
        return not self.remaining


def must_leave(pod: PodRecord) -> bool:
    """Whether draining has to move this pod off its Node."""
    return not (pod.owner_kind == "DaemonSet" or pod.mirror or pod.finished)


class Drainer:
    """Evicts pods from Nodes, a step at a time."""

    def __init__(self, client: KubeClient, pods: Informer[PodRecord]) -> None:
        self._client = client
        self._pods = pods

    def step(self, node: NodeRecord, grace_period: int | None = None) -> DrainStep:
        """Evict every pod on ``node`` that must leave and is not already on its way out."""
        result = DrainStep()
        for pod in self._pods.by_index("node", node.name):
            if not must_leave(pod):
                continue
            result.remaining.append(pod.key)
            if pod.deleting:
                continue  # evicted already; waiting for its kubelet to finish it
            reason = self._evict(pod, grace_period)
            if reason:
                result.blocked[pod.key] = reason
        return result

    def _evict(self, pod: PodRecord, grace_period: int | None) -> str | None:
        body: dict[str, object] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        }
        if grace_period is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_period, "preconditions": {"uid": pod.uid}}
        try:
            self._client.create(PODS, body, namespace=pod.namespace, subresource="eviction", name=pod.name)
        except ApiError as error:
            if error.not_found:
                return None
            if error.status == 429:  # a PodDisruptionBudget forbids it now
                return error.message
            raise
        return None
