"""Bad input: fuzzed requests against the running provider get precise statuses, and cost no memory.

The cases are drawn by tests/grpc/_fuzz.py, which lists the codes each RPC may answer (ALLOWED) and narrows
them per request, with the field an error must name. The gRPC server runs in this process, so the memory read is
its own (VmRSS, after a warm-up of 1,500 requests). The seed is fixed so that CI sends the same 10,000
requests every time; KUBE_NODE_FUZZ_SEED explores others, KUBE_NODE_FUZZ_COUNT sends more or fewer. A failure
prints the seed and the requests.
"""

from __future__ import annotations

import gc
import os
import random
import time
from collections import Counter

import pytest

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODESETS, KubeClient
from tests.conftest import Provider, eventually
from tests.grpc._fuzz import Caller, Fuzzer, make_world, rss_kib, send

pytestmark = pytest.mark.controlplane

SEED = int(os.environ.get("KUBE_NODE_FUZZ_SEED", "20261203"))
COUNT = int(os.environ.get("KUBE_NODE_FUZZ_COUNT", "10000"))
WARM_UP = 1_500
THREADS = 8


@pytest.mark.slow
def test_ten_thousand_fuzzed_requests_get_precise_statuses_and_leave_memory_flat(
    kube: KubeClient, provider: Provider, manager: Manager
) -> None:
    print(f"fuzz seed {SEED} (KUBE_NODE_FUZZ_SEED), {COUNT} requests")
    world = make_world(kube, eventually)
    eventually(lambda: len(provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 3, what="3 node groups")
    eventually(lambda: manager.nodes.get("fz-foreign"), what="the foreign Node cached")
    fuzzer = Fuzzer(world, random.Random(SEED))
    caller = Caller(provider.channel)

    # The warm-up takes every code path once and brings caches, pools and thread arenas to size.
    warm_codes, problems = send(caller, fuzzer, WARM_UP, THREADS)
    gc.collect()
    before = rss_kib()
    started = time.monotonic()
    codes, more = send(caller, fuzzer, COUNT, THREADS)
    seconds = time.monotonic() - started
    problems += more
    gc.collect()
    after = rss_kib()

    by_code = Counter[str]()
    for (_, code), n in codes.items():
        by_code[code] += n
    print(f"{COUNT} requests in {seconds:.1f} s ({COUNT / seconds:.0f}/s): {dict(by_code.most_common())}")
    print(f"RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
    assert not problems, f"seed {SEED}: {len(problems)} imprecise answers, e.g.:\n" + "\n".join(problems[:15])
    assert not {code for code in by_code} & {"INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "UNAVAILABLE"}
    # The state-changing RPCs got past validation too (the first DeleteNodes of fz's Nodes take them).
    for rpc in ("NodeGroupIncreaseSize", "NodeGroupDecreaseTargetSize", "NodeGroupDeleteNodes", "PricingNodePrice"):
        assert codes[rpc, "OK"] + warm_codes[rpc, "OK"], f"seed {SEED}: no {rpc} was accepted: {sorted(codes.items())}"
    assert after <= before * 1.10, f"seed {SEED}: RSS grew from {before} KiB to {after} KiB"
    # Still serving, and still consistent: the groups' targets inside their limits.
    assert provider.stub.GPULabel(pb.GPULabelRequest()).label
    assert 0 <= kube.get(NODESETS, "fz")["spec"]["replicas"] <= 4
