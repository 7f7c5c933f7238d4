"""The ``kube-node`` command line.

The settings of ``kube-node run`` (flags, environment variables, config-file keys) are declared once, in
``kube_node._settings``; the flags here are made from that table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nodeset_controller.api import API_VERSION, crd_yaml

from . import __version__, _dev, _run, _settings
from ._logging import configure_logging
from ._settings import GLOBAL, Resolved, Setting, SettingError

log = logging.getLogger(__name__)

DESCRIPTION = """\
kube-node lets a Kubernetes cluster manage its own nodes: NodeClasses describe how machines are made,
NodeSets keep N nodes of a class, and kube-node's controllers create and destroy the machines.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser, and its ``run`` subcommand's."""
    parser = argparse.ArgumentParser(
        prog="kube-node", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kube-node {__version__}")
    for name in GLOBAL:
        _add_flag(parser.add_argument, _settings.BY_NAME[name])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "crds",
        help="print the NodeClass and NodeSet CRD manifests (YAML)",
        description=f"Print the CustomResourceDefinitions of {API_VERSION}, e.g. "
        "`kube-node crds | kubectl apply -f -`.",
    )

    run = commands.add_parser(
        "run",
        help="run the controllers against a cluster until SIGTERM",
        description="Run kube-node's controllers, the pending-pod autoscaler and the cluster-autoscaler provider "
        "against the cluster of --kubeconfig (or, inside a pod, the in-cluster credentials). Replicas elect a "
        "leader on a Lease: every replica keeps its caches warm and answers the gRPC server's reads; only the "
        "leader acts.\n\n"
        "Every flag can also be set by an environment variable KUBE_NODE_<FLAG> (e.g. KUBE_NODE_CLUSTER_NAME) "
        "or in a YAML --config file whose keys are the flag names (e.g. `cluster-name: prod`, "
        "`leader-elect: false`). Precedence: command line, then config file, then environment, then defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for concern, settings in _settings.concerns().items():
        group = run.add_argument_group(concern)
        for setting in settings:
            _add_flag(group.add_argument, setting)

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
        if name in ("up", "serve"):
            sub.add_argument(
                "--real-nodes",
                action="store_true",
                help="the demo NodeSet's machines are real kubelets on this host, each with its own containerd "
                "(needs root; installs containerd, runc and the CNI plugins from the distribution when missing "
                "and builds the kubelet), instead of simulated ones",
            )
    return parser, run


def _add_flag(add_argument: Callable[..., argparse.Action], setting: Setting) -> None:
    """The flag of ``setting`` (and a hidden one per deprecated name); it is only in the parsed arguments when
    given, so that the config file, the environment and the default can be told apart (see parse)."""
    extra: dict[str, object] = {}
    if setting.type is bool:
        extra["action"] = argparse.BooleanOptionalAction
    else:
        extra["type"] = _argparse_type(setting)
        extra["metavar"] = setting.metavar
        if setting.choices:
            extra["choices"] = setting.choices
            extra["metavar"] = None
    help_text = setting.help_text().replace("%", "%%")
    add_argument(setting.flag, dest=setting.name, default=argparse.SUPPRESS, help=help_text, **extra)
    for alias in setting.aliases:
        add_argument(f"--{alias}", dest=alias, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)


def _argparse_type(setting: Setting) -> object:
    def convert(text: str) -> object:
        try:
            return setting.convert(text)
        except SettingError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; ``.settings`` holds the resolved settings (of ``run``: all of them, with its config
    file and the environment; of the other commands: the global ones). Exits on a usage error."""
    parser, run_parser = _build()
    args = parser.parse_args(list(argv))
    given = {name: value for name, value in vars(args).items() if name in _settings.BY_NAME}
    try:
        if args.command == "run":
            args.settings = _settings.resolve(given, os.environ)
        else:
            args.settings = _settings.resolve(given, os.environ, names=GLOBAL)
    except SettingError as error:
        (run_parser if args.command == "run" else parser).error(str(error))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kube-node`` command; returns the exit code."""
    args = parse(sys.argv[1:] if argv is None else argv)
    settings: Resolved = args.settings
    configure_logging(settings.values["log-level"], settings.values["log-format"])
    if args.command == "run":
        return _run.run(run_options(args))
    if args.command == "crds":
        sys.stdout.write(crd_yaml())
        return 0
    if args.command == "dev":
        state_dir: Path = args.state_dir or _dev.default_state_dir()
        if args.dev_command == "up":
            return _dev.up(state_dir, real_nodes=args.real_nodes)
        if args.dev_command == "down":
            return _dev.down(state_dir)
        return _dev.serve(state_dir, real_nodes=args.real_nodes)
    raise AssertionError(f"unhandled command {args.command}")


def run_options(args: argparse.Namespace) -> _run.RunOptions:
    """What ``kube-node run`` was told, as options; logs a warning for each deprecated name it was told by, and
    exits when the settings do not go together (TLS material without all three files)."""
    settings: Resolved = args.settings
    for deprecation in settings.deprecations:
        log.warning("%s", deprecation)
    try:
        return _settings.run_options(settings.values)
    except SettingError as error:
        raise SystemExit(f"kube-node run: {error}") from None
