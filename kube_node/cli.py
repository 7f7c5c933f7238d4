"""The ``kube-node`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nodeset_controller.api import crd_yaml

from . import __version__, _dev

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
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "crds",
        help="print the NodeClass and NodeSet CRD manifests (YAML)",
        description="Print the CustomResourceDefinitions of kube-node.io/v1alpha1, e.g. "
        "`kube-node crds | kubectl apply -f -`.",
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
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
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
