"""The ``kube-node`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from autoscaler_provider import TLSFiles
from nodeset_controller.api import crd_yaml
from nodeset_controller.controllers import PendingPodAutoscalerSettings

from . import __version__, _dev, _run
from ._logging import configure_logging

DESCRIPTION = """\
kube-node lets a Kubernetes cluster manage its own nodes: NodeClasses describe how machines are made,
NodeSets keep N nodes of a class, and kube-node's controllers create and destroy the machines.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="kube-node", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kube-node {__version__}")
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO; env KUBE_NODE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="text for people, json for log pipelines (default text; env KUBE_NODE_LOG_FORMAT)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "crds",
        help="print the NodeClass and NodeSet CRD manifests (YAML)",
        description="Print the CustomResourceDefinitions of kube-node.io/v1alpha1, e.g. "
        "`kube-node crds | kubectl apply -f -`.",
    )

    run = commands.add_parser(
        "run",
        help="run the controllers against a cluster until SIGTERM",
        description="Run kube-node's controllers against the cluster of --kubeconfig (or, inside a pod, the "
        "in-cluster credentials). Every flag can also be set by an environment variable "
        "KUBE_NODE_<FLAG> (e.g. KUBE_NODE_CLUSTER_NAME).",
    )
    run.add_argument(
        "--kubeconfig",
        default=_env_optional("KUBECONFIG_PATH"),
        help="kubeconfig file (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)",
    )
    run.add_argument("--context", default=_env_optional("CONTEXT"), help="kubeconfig context to use")
    run.add_argument(
        "--cluster-name",
        default=_env("CLUSTER_NAME", "kube-node"),
        help="tag on every machine this kube-node makes, so it recognises its own (default kube-node)",
    )
    run.add_argument(
        "--simulator-dir",
        type=Path,
        default=_env_optional("SIMULATOR_DIR"),
        help="enable the simulator provider and keep its machines in this directory",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "16")),
        help="concurrent Node reconciles, and so concurrent cloud calls (default 16)",
    )
    run.add_argument(
        "--orphan-grace-period",
        type=float,
        default=float(_env("ORPHAN_GRACE_PERIOD", "600")),
        help="seconds before a machine with no Node is destroyed (default 600)",
    )
    run.add_argument(
        "--sweep-interval",
        type=float,
        default=float(_env("SWEEP_INTERVAL", "30")),
        help="seconds between listings of each NodeClass's machines, which notice failed machines and orphans "
        "(default 30)",
    )
    run.add_argument(
        "--grpc-address",
        default=_env("GRPC_ADDRESS", "127.0.0.1:8086"),
        help="where the cluster-autoscaler externalgrpc provider listens (host:port; empty disables it; "
        "default 127.0.0.1:8086)",
    )
    run.add_argument(
        "--grpc-cert",
        type=Path,
        default=_env_optional("GRPC_CERT"),
        help="the provider's TLS certificate (PEM); with --grpc-key and --grpc-client-ca",
    )
    run.add_argument("--grpc-key", type=Path, default=_env_optional("GRPC_KEY"), help="its private key (PEM)")
    run.add_argument(
        "--grpc-client-ca",
        type=Path,
        default=_env_optional("GRPC_CLIENT_CA"),
        help="the CA that client certificates must chain to; clients without one are refused",
    )
    run.add_argument(
        "--grpc-insecure",
        action="store_true",
        default=_env("GRPC_INSECURE", "") == "true",
        help="serve the provider without TLS (anyone who reaches it can create and delete machines)",
    )
    run.add_argument(
        "--autoscaler-unneeded-time",
        type=float,
        default=float(_env("AUTOSCALER_UNNEEDED_TIME", "600")),
        help="pending-pod autoscaler: seconds a Node must be empty before it is removed (default 600)",
    )
    run.add_argument(
        "--autoscaler-batch-window",
        type=float,
        default=float(_env("AUTOSCALER_BATCH_WINDOW", "0.1")),
        help="pending-pod autoscaler: seconds to gather a burst of pending pods (default 0.1)",
    )
    run.add_argument(
        "--autoscaler-max-total-nodes",
        type=int,
        default=_env_optional("AUTOSCALER_MAX_TOTAL_NODES"),
        help="pending-pod autoscaler: cap on the Nodes of all KubeNode-mode NodeSets (default none)",
    )
    run.add_argument(
        "--autoscaler-expander",
        default=_env("AUTOSCALER_EXPANDER", "least-waste"),
        choices=["least-waste", "priority", "price"],
        help="pending-pod autoscaler: how to choose among NodeSets that fit (default least-waste)",
    )
    run.add_argument(
        "--autoscaler-utilization-threshold",
        type=float,
        default=float(_env("AUTOSCALER_UTILIZATION_THRESHOLD", "0.5")),
        help="pending-pod autoscaler: a Node using less CPU and memory than this share may be consolidated "
        "(default 0.5)",
    )
    run.add_argument(
        "--install-crds",
        action="store_true",
        default=_env("INSTALL_CRDS", "") == "true",
        help="create or update the CRDs at start (the Helm chart installs them otherwise)",
    )

    dev = commands.add_parser(
        "dev",
        help="a local control plane with kube-node on it, for trying things out",
        description="Run a real local Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, "
        "kube-controller-manager) on 127.0.0.1 with kube-node's CRDs, a sample simulator "
        "NodeClass and a sample NodeSet.",
    )
    dev_commands = dev.add_subparsers(dest="dev_command", required=True, metavar="DEV_COMMAND")
    for name, text in (
        ("up", "start it in the background (building the binaries on first use) and print how to use kubectl with it"),
        ("down", "stop it and every process it started"),
        ("serve", "run it in the foreground until Ctrl-C (what `dev up` starts)"),
    ):
        sub = dev_commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="where its state, kubeconfig and logs live (default $KUBE_NODE_DEV_DIR or "
            "~/.local/state/kube-node/dev)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kube-node`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    if args.command == "run":
        return _run.run(
            kubeconfig=args.kubeconfig,
            context=args.context,
            cluster=args.cluster_name,
            simulator_dir=args.simulator_dir,
            workers=args.workers,
            orphan_grace=args.orphan_grace_period,
            sweep_interval=args.sweep_interval,
            install=args.install_crds,
            grpc_address=args.grpc_address,
            grpc_tls=_grpc_tls(args),
            autoscaler=PendingPodAutoscalerSettings(
                unneeded_time=args.autoscaler_unneeded_time,
                batch_window=args.autoscaler_batch_window,
                max_total_nodes=args.autoscaler_max_total_nodes,
                expander=args.autoscaler_expander,
                utilization_threshold=args.autoscaler_utilization_threshold,
            ),
        )
    if args.command == "crds":
        sys.stdout.write(crd_yaml())
        return 0
    if args.command == "dev":
        state_dir: Path = args.state_dir or _dev.default_state_dir()
        if args.dev_command == "up":
            return _dev.up(state_dir)
        if args.dev_command == "down":
            return _dev.down(state_dir)
        return _dev.serve(state_dir)
    raise AssertionError(f"unhandled command {args.command}")


def _grpc_tls(args: argparse.Namespace) -> TLSFiles | None:
    """Mutual TLS from the three files, or None with --grpc-insecure; anything in between is a usage error."""
    files = (args.grpc_cert, args.grpc_key, args.grpc_client_ca)
    if args.grpc_insecure or not args.grpc_address:
        return None
    if not all(files):
        raise SystemExit(
            "kube-node run: the cluster-autoscaler provider uses mutual TLS: give --grpc-cert, --grpc-key and "
            "--grpc-client-ca, or --grpc-insecure to serve it in plaintext, or --grpc-address= to disable it"
        )
    return TLSFiles(cert=args.grpc_cert, key=args.grpc_key, client_ca=args.grpc_client_ca)


def _env(name: str, default: str) -> str:
    """The KUBE_NODE_<NAME> environment variable, or ``default``."""
    return os.environ.get(f"KUBE_NODE_{name}", default)


def _env_optional(name: str) -> str | None:
    """The KUBE_NODE_<NAME> environment variable, or None."""
    return os.environ.get(f"KUBE_NODE_{name}")
