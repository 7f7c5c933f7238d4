"""Simulated kubelets for the simulator's Running machines.

For each Running machine, as a kubelet would for its Node: post the Node's status (Ready, capacity and
allocatable from the NodeClass, nodeInfo, addresses), renew its Lease in ``kube-node-lease``, move pods
bound to it to Running, and finish pods deleted from it. When the machine crashes or is destroyed, all of
that stops, as it would on a real machine. One thread schedules the work for every machine and a small
pool of threads does the API calls, so one process carries thousands of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..api import now_rfc3339
from ..kube import (
    LEASES,
    NODES,
    PODS,
    STRATEGIC_MERGE_PATCH,
    ApiError,
    Informer,
    KubeClient,
    NotLeaderError,
    PodRecord,
    bound_pods_informer,
)
from ._machine import MachineState
from ._simulator import SimulatedMachine, SimulatorCloud

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.36.3-kube-node-sim"


def ready_status(node_name: str, machine_id: str, private_ip: str, capacity: dict[str, Any]) -> dict[str, Any]:
    """The status a kubelet posts for its Node once it is up: Ready, no pressure, capacity (with the NodeClass's
    values), addresses and nodeInfo."""
    capacity = {"pods": "110", **{k: str(v) for k, v in capacity.items()}}
    stamp = now_rfc3339()
    conditions = [
        {
            "type": kind,
            "status": "False",
            "reason": reason,
            "message": f"simulated kubelet: {reason}",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for kind, reason in (
            ("MemoryPressure", "KubeletHasSufficientMemory"),
            ("DiskPressure", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "KubeletHasSufficientPID"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "simulated kubelet is posting ready status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    status = {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": private_ip},
            {"type": "Hostname", "address": node_name},
        ],
        "nodeInfo": {
            "machineID": machine_id,
            "systemUUID": machine_id,
            "bootID": machine_id,
            "kernelVersion": "6.1.0-sim",
            "osImage": "kube-node simulator",
            "containerRuntimeVersion": "sim://1.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    }
    return status


def node_lease(node_name: str, node_uid: str | None) -> dict[str, Any]:
    """A kubelet's heartbeat Lease for its Node, owned by the Node (so it goes when the Node goes)."""
    body: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node_name, "namespace": LEASE_NAMESPACE},
        "spec": _lease_spec(node_name),
    }
    if node_uid:
        body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]
    return body


def _lease_spec(node_name: str) -> dict[str, Any]:
    return {"holderIdentity": node_name, "leaseDurationSeconds": 40, "renewTime": now_rfc3339(micro=True)}


@dataclass
class _Kubelet:
    machine: SimulatedMachine
    reported_at: float = 0.0
    lease_at: float = 0.0
    busy: bool = False


class SimulatedKubelets:
    """Runs a simulated kubelet for every Running machine of a SimulatorCloud."""

    def __init__(
        self,
        client: KubeClient,
        cloud: SimulatorCloud,
        *,
        lease_interval: float = 10.0,
        status_interval: float = 60.0,
        workers: int = 16,
        tick: float = 0.2,
        node_uid: Callable[[str], str | None] | None = None,
        pods: Informer[PodRecord] | None = None,
    ) -> None:
        self._client = client
        self._cloud = cloud
        self._lease_interval = lease_interval
        self._status_interval = status_interval
        self._tick = tick
        self._node_uid = node_uid
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="simkubelet")
        self._lock = threading.Lock()
        self._kubelets: dict[str, _Kubelet] = {}  # by node name
        self._pods_in_flight: set[str] = set()
        self._stop = threading.Event()
        self._own_pods = pods is None
        self.pods = pods if pods is not None else bound_pods_informer(client)  # an empty cache is falsy
        self.pods.add_handler(self._on_pod)
        self._thread = threading.Thread(target=self._run, name="simkubelets", daemon=True)

    def start(self) -> None:
        """Start watching pods (unless the pod cache was given, and so is started by its owner) and kubelets."""
        if self._own_pods:
            self.pods.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop every kubelet (their Nodes stop heartbeating)."""
        self._stop.set()
        if self._own_pods:
            self.pods.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def running_nodes(self) -> list[str]:
        """Names of the Nodes whose kubelet is running."""
        with self._lock:
            return [name for name, k in self._kubelets.items() if k.reported_at]

    # -- scheduling --------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self._schedule(time.time())
            except Exception:
                log.exception("simulated kubelets: scheduling failed")

    def _schedule(self, now: float) -> None:
        running = {m.node_name: m for m in self._cloud.machines() if m.state(now) is MachineState.RUNNING}
        with self._lock:
            for node_name in list(self._kubelets):
                kubelet = self._kubelets[node_name]
                machine = running.get(node_name)
                if machine is None or machine.name != kubelet.machine.name:
                    del self._kubelets[node_name]  # crashed or destroyed: its heartbeats stop
            for node_name, machine in running.items():
                kubelet = self._kubelets.setdefault(node_name, _Kubelet(machine))
                if kubelet.busy:
                    continue
                status_due = now - kubelet.reported_at >= self._status_interval
                lease_due = now - kubelet.lease_at >= self._lease_interval
                if status_due or lease_due:
                    kubelet.busy = True
                    self._pool.submit(self._heartbeat, kubelet, status_due, lease_due)

    def _heartbeat(self, kubelet: _Kubelet, status_due: bool, lease_due: bool) -> None:
        try:
            first = not kubelet.reported_at
            if status_due:
                if not self._post_status(kubelet.machine):
                    return
                kubelet.reported_at = time.time()
            if lease_due:
                self._renew_lease(kubelet.machine, exists=bool(kubelet.lease_at))
                kubelet.lease_at = time.time()
            if first:
                for pod in self.pods.by_index("node", kubelet.machine.node_name):
                    self._on_pod(None, pod)
        except NotLeaderError:
            pass  # they run with the controllers, behind the same fence, which has said so once
        except ApiError as error:
            log.warning("simulated kubelet %s: %s", kubelet.machine.node_name, error)
        except Exception:
            log.exception("simulated kubelet %s failed", kubelet.machine.node_name)
        finally:
            kubelet.busy = False

    # -- the Node ----------------------------------------------------------------------------------------

    def _post_status(self, machine: SimulatedMachine) -> bool:
        """Post Ready status; False if the Node is not the one this machine was made for (or is gone)."""
        if self._node_uid is not None:
            uid = self._node_uid(machine.node_name)  # from kube-node's own cache: no extra request
        else:
            try:
                uid = self._client.get(NODES, machine.node_name)["metadata"].get("uid")
            except ApiError as error:
                if not error.not_found:
                    raise
                uid = None
        if uid is None or (machine.spec.get("nodeUID") and uid != machine.spec["nodeUID"]):
            return False
        status = ready_status(machine.node_name, machine.id, machine.private_ip, machine.spec.get("capacity") or {})
        self._client.patch(
            NODES, machine.node_name, {"status": status}, subresource="status", content_type=STRATEGIC_MERGE_PATCH
        )
        return True

    def _renew_lease(self, machine: SimulatedMachine, *, exists: bool) -> None:
        spec = _lease_spec(machine.node_name)
        if exists:  # renew; a Lease that vanished is created again below
            try:
                self._client.patch(LEASES, machine.node_name, {"spec": spec}, namespace=LEASE_NAMESPACE)
                return
            except ApiError as error:
                if not error.not_found:
                    raise
        try:
            self._client.create(
                LEASES, node_lease(machine.node_name, machine.spec.get("nodeUID")), namespace=LEASE_NAMESPACE
            )
        except ApiError as create_error:
            if not create_error.already_exists:
                raise
            self._client.patch(LEASES, machine.node_name, {"spec": spec}, namespace=LEASE_NAMESPACE)

    # -- pods --------------------------------------------------------------------------------------------

    def _on_pod(self, old: PodRecord | None, pod: PodRecord | None) -> None:
        if pod is None or not (pod.deleting or pod.phase == "Pending"):
            return
        with self._lock:
            kubelet = self._kubelets.get(pod.node)
            if kubelet is None or not kubelet.reported_at:
                return
            key = f"{pod.namespace}/{pod.name}/{pod.uid}"
            if key in self._pods_in_flight:
                return
            self._pods_in_flight.add(key)
            machine = kubelet.machine
        self._pool.submit(self._sync_pod, key, pod, machine)

    def _sync_pod(self, key: str, pod: PodRecord, machine: SimulatedMachine) -> None:
        try:
            if pod.deleting:
                self._client.delete(PODS, pod.name, pod.namespace, gracePeriodSeconds=0, preconditions={"uid": pod.uid})
            else:
                self._start_pod(pod, machine)
        except NotLeaderError:
            pass
        except ApiError as error:
            if not (error.not_found or error.conflict):
                log.warning("simulated kubelet %s: pod %s/%s: %s", machine.node_name, pod.namespace, pod.name, error)
        except Exception:
            log.exception("simulated kubelet %s: pod %s/%s", machine.node_name, pod.namespace, pod.name)
        finally:
            with self._lock:
                self._pods_in_flight.discard(key)

    def _start_pod(self, pod: PodRecord, machine: SimulatedMachine) -> None:
        stamp = now_rfc3339()
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": stamp}
            for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled")
        ]
        containers = [
            {
                "name": name,
                "image": image,
                "imageID": f"sim://{image}",
                "containerID": f"sim://{pod.uid}/{name}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
            }
            for name, image in pod.containers
        ]
        status = {
            "metadata": {"uid": pod.uid},
            "status": {
                "phase": "Running",
                "conditions": conditions,
                "hostIP": machine.private_ip,
                "hostIPs": [{"ip": machine.private_ip}],
                "podIP": machine.private_ip,
                "podIPs": [{"ip": machine.private_ip}],
                "startTime": stamp,
                "containerStatuses": containers,
            },
        }
        self._client.patch(
            PODS, pod.name, status, pod.namespace, subresource="status", content_type=STRATEGIC_MERGE_PATCH
        )
