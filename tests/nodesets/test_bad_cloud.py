"""A bad cloud: 30% of creates refused for quota, 10% of destroys failing, 5% of machines crashing after boot,
creates ten times slower than boot. kube-node keeps replacements within their bound, its API writes and
cloud calls at a bounded rate, and leaks nothing when the set goes to zero. bench/bad_cloud.py prints the
same figures for a larger set."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodeset_controller.api import ANNOTATION_REMOVAL_REASON
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODESETS, KubeClient
from tests.conftest import eventually, nodeset_manifest, simulator_nodeclass
from tests.nodesets.test_nodeset_controller import members

pytestmark = pytest.mark.controlplane

#: The simulator's faults, as a NodeClass's driverOptions (bench/bad_cloud.py uses the same).
BAD_CLOUD = {
    "createFailureRate": "0.3",
    "destroyFailureRate": "0.1",
    "crashRate": "0.05",
    "crashAfterSeconds": 4,
    "bootDelaySeconds": "0.2",
    "createDelaySeconds": 2,
}
_WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}


def api_writes(kube: KubeClient) -> float:
    """The API server's own count of write requests so far (apiserver_request_total)."""
    text = kube.raw("GET", "/metrics", accept="text/plain").data.decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "apiserver_request"
        for sample in family.samples
        if sample.name == "apiserver_request_total" and sample.labels.get("verb") in _WRITE_VERBS
    )


def test_a_bad_cloud_keeps_replacements_bounded_rates_bounded_and_leaks_nothing(
    kube: KubeClient, manager: Manager
) -> None:
    assert manager.simulator is not None
    replicas, in_flight = 10, 2
    kube.create(NODECLASSES, simulator_nodeclass("flaky", **BAD_CLOUD))
    kube.create(
        NODESETS,
        nodeset_manifest("flaky", replicas, nodeclass="flaky", replacement={"maxInFlight": in_flight}),
    )
    writes_before, creates_before = api_writes(kube), len(manager.simulator.create_log)
    started = time.monotonic()
    most_members = most_replacing = 0
    while time.monotonic() - started < 25:
        nodes: list[dict[str, Any]] = members(kube, "flaky")
        most_members = max(most_members, len(nodes))
        replacing = [n for n in nodes if (n["metadata"].get("annotations") or {}).get(ANNOTATION_REMOVAL_REASON)]
        most_replacing = max(most_replacing, len(replacing))
        time.sleep(0.1)
    seconds = time.monotonic() - started
    writes_per_second = (api_writes(kube) - writes_before) / seconds
    creates_per_second = (len(manager.simulator.create_log) - creates_before) / seconds
    print(f"bad cloud, {replicas} Nodes: {writes_per_second:.1f} API writes/s, {creates_per_second:.1f} creates/s")

    assert most_replacing <= in_flight
    assert most_members <= replicas + in_flight
    # Bounded: a Node is worth a handful of writes while it comes up and one per retry with backoff after;
    # a tight loop (a write that requeues itself) would be hundreds a second.
    assert writes_per_second < 10 * replicas / 2, writes_per_second
    assert creates_per_second < replicas, creates_per_second

    kube.patch(NODESETS, "flaky", {"spec": {"replicas": 0}})
    eventually(lambda: not members(kube, "flaky"), timeout=120, what="every Node gone")
    eventually(lambda: not manager.simulator.machines(), timeout=60, what="every machine destroyed (none leaked)")
