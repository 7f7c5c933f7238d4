"""Benchmark: fuzzed externalgrpc requests (tests/grpc/_fuzz.py) against kube-node run as its own process,
over mutual TLS, on a real control plane. Prints requests/s, the status codes per RPC and overall, every
imprecise answer, and the server process's resident memory (VmRSS) after the warm-up and after the run.

    .venv/bin/python bench/grpc_fuzz.py [--requests 10000] [--warm-up 1500] [--threads 8] [--seed 20261203]

Exits 1 if any answer was imprecise (a code the contract does not allow that request, INTERNAL or UNKNOWN).
"""

from __future__ import annotations

import argparse
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import yaml
from _harness import control_plane, kube_node

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from tests.grpc._fuzz import Caller, Fuzzer, make_world, rss_kib, send


def poll(check: Callable[[], Any], *, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warm-up", type=int, default=1_500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    print(f"seed {args.seed}")
    with (
        control_plane() as (plane, client, scratch),
        kube_node(plane, scratch, provider_port=free_port()) as (
            process,
            cloud_config,
        ),
    ):
        assert cloud_config is not None
        config = yaml.safe_load(cloud_config.read_text())
        credentials = grpc.ssl_channel_credentials(
            root_certificates=open(config["cacert"], "rb").read(),  # noqa: SIM115 - read at once
            private_key=open(config["key"], "rb").read(),  # noqa: SIM115
            certificate_chain=open(config["cert"], "rb").read(),  # noqa: SIM115
        )
        channel = grpc.secure_channel(config["address"], credentials)
        world = make_world(client, poll)
        stub = pb_grpc.CloudProviderStub(channel)
        poll(lambda: len(stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 3, what="3 node groups")
        fuzzer = Fuzzer(world, random.Random(args.seed))
        caller = Caller(channel)

        _, problems = send(caller, fuzzer, args.warm_up, args.threads)
        before = rss_kib(process.pid)
        started = time.monotonic()
        codes, more = send(caller, fuzzer, args.requests, args.threads)
        seconds = time.monotonic() - started
        after = rss_kib(process.pid)
        problems += more
        channel.close()

    total: Counter[str] = Counter()
    for (_, code), count in codes.items():
        total[code] += count
    rate = args.requests / seconds
    print(f"{args.requests} requests, {args.threads} at a time, in {seconds:.1f} s: {rate:.0f} requests/s")
    print("codes: " + ", ".join(f"{code} {count}" for code, count in total.most_common()))
    for rpc in sorted({rpc for rpc, _ in codes}):
        print(f"  {rpc}: " + ", ".join(f"{code} {n}" for (r, code), n in sorted(codes.items()) if r == rpc))
    print(
        f"server RSS {before / 1024:.1f} MiB after the warm-up ({args.warm_up} requests), {after / 1024:.1f} MiB "
        f"after the run ({(after - before) / before:+.1%})"
    )
    for problem in problems[:20]:
        print(f"IMPRECISE: {problem}")
    print(f"{len(problems)} imprecise answers")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
