"""The local provider's machines without a cluster: idempotent creates, state on disk that outlives the
provider object (a kube-node restart), listing for orphans, and a destroy that leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeset_controller.api import NodeClass
from nodeset_controller.kube import nodeclass_from_json
from nodeset_controller.providers import (
    LocalMachines,
    LocalProvider,
    LocalSettings,
    MachineSpec,
    MachineState,
    ProviderError,
)
from nodeset_controller.providers import _local_host as host
from tests.conftest import eventually
from tests.realnodes.conftest import RealHost

pytestmark = pytest.mark.realnodes


def nodeclass(name: str = "local", **options: str) -> NodeClass:
    return nodeclass_from_json(
        {
            "apiVersion": "kube-node.io/v1alpha1",
            "kind": "NodeClass",
            "metadata": {"name": name, "uid": "u", "generation": 1},
            "spec": {"provider": "local", "capacity": {"cpu": "1", "memory": "1Gi"}, "driverOptions": options},
        }
    )


def spec(name: str, user_data: str, cluster: str = "c1") -> MachineSpec:
    return MachineSpec(
        name=name,
        node_name=name,
        node_uid="uid",
        nodeclass="local",
        cluster=cluster,
        provider_id=f"kube-node://local/{name}",
        user_data=user_data,
    )


#: A machine whose "daemons" are two sleeps, one in a process group of its own (as a shim's is)
USER_DATA = (
    '#!/bin/bash\necho "$MACHINE_KUBELET_PORT $MACHINE_POD_CIDR $MACHINE_CNI_BRIDGE" > "$MACHINE_DIR/env"\n'
    "sleep 300 &\nsetsid sleep 301 &\n"
)


def test_machines_are_idempotent_survive_a_restart_are_listed_and_destroyed_cleanly(
    real_host: RealHost,
) -> None:
    directory = Path(str(real_host.root)) / "p"
    provider = LocalProvider(LocalMachines(directory, kubelet=real_host.kubelet), nodeclass(), "c1")
    first = provider.create(spec("m-a", USER_DATA))
    assert provider.create(spec("m-a", USER_DATA)).id == first.id  # idempotent by name
    provider.create(spec("m-b", USER_DATA))
    LocalMachines(directory, kubelet=real_host.kubelet).create(
        spec("m-other", USER_DATA, cluster="c2"), LocalSettings()
    )
    a = LocalMachines(directory).get("m-a")
    b = LocalMachines(directory).get("m-b")
    assert a is not None and b is not None
    assert a.subnet != b.subnet and len({a.kubelet_port, a.healthz_port, b.kubelet_port, b.healthz_port}) == 4
    env = eventually(lambda: (Path(a.directory) / "env").exists() and (Path(a.directory) / "env").read_text())
    assert env.split() == [str(a.kubelet_port), a.subnet, a.bridge]
    eventually(lambda: len(host.cgroup_pids(a.cgroup)) == 2, what="both sleeps in the machine's cgroup")

    # kube-node restarts: a new provider object finds the machines from their directories, running
    again = LocalProvider(LocalMachines(directory, kubelet=real_host.kubelet), nodeclass(), "c1")
    listed = {m.name: m for m in again.list()}
    assert set(listed) == {"m-a", "m-b"}  # c2's machine is another cluster's
    assert {m.state for m in listed.values()} == {MachineState.RUNNING}
    assert again.get("m-a") == listed["m-a"]

    # destroy: every process (the one in a group of its own too), the cgroup and the directory
    again.destroy("m-a", machine_id="local-not-this-one")  # another machine of that name: not this one
    assert again.get("m-a") is not None
    again.destroy("m-a")
    again.destroy("m-a")  # already gone is fine
    assert again.get("m-a") is None
    assert not Path(a.directory).exists()
    assert not host.cgroup_pids(a.cgroup)
    assert not any((h / a.cgroup).exists() for h in host.cgroup_hierarchies())

    # a machine whose processes all exit is Failed, its error naming its log (and nothing it printed)
    failed = again.create(spec("m-c", "#!/bin/bash\necho secret-token\nexit 3\n"))
    assert failed.state in (MachineState.PENDING, MachineState.RUNNING, MachineState.FAILED)
    seen = eventually(lambda: (m := again.get("m-c")) and m.state is MachineState.FAILED and m, timeout=10)
    assert "user-data.log" in (seen.error or "") and "secret" not in (seen.error or "")
    for name in ("m-b", "m-c"):
        again.destroy(name)
    LocalMachines(directory).destroy("m-other")
    assert not [p for p in directory.iterdir() if p.name.startswith("m")]


def test_bad_driver_options_are_invalid_configuration(real_host: RealHost) -> None:
    with pytest.raises(ProviderError, match=r"driverOptions\.podRange") as caught:
        LocalProvider(LocalMachines(real_host.root / "q"), nodeclass(podRange="10.244.0.0/25"), "c1")
    assert not caught.value.retryable


def test_a_machines_directory_too_long_for_unix_sockets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        LocalMachines(tmp_path / ("x" * 80))
