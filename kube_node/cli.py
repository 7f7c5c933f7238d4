"""The ``kube-node`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from autoscaler_provider import TLSFiles
from nodeset_controller.api import crd_yaml
from nodeset_controller.controllers import PendingPodAutoscalerSettings

from . import __version__, _dev, _run
from ._logging import configure_logging
from ._run import LABEL_LEADER

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_FORMATS = ["text", "json"]
#: The flags' defaults come from the options' own, so each is written down once.
_DEFAULT = _run.RunOptions()
_PENDING = _DEFAULT.pending_pod_autoscaler

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
        choices=LOG_LEVELS,
        help="log verbosity (default INFO; env KUBE_NODE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=LOG_FORMATS,
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
        description="Run kube-node's controllers, the pending-pod autoscaler and the cluster-autoscaler provider "
        "against the cluster of --kubeconfig (or, inside a pod, the in-cluster credentials). Replicas elect a "
        "leader on a Lease: every replica keeps its caches warm and answers the provider's reads; only the "
        "leader acts.\n\n"
        "Every flag can also be set by an environment variable KUBE_NODE_<FLAG> (e.g. KUBE_NODE_CLUSTER_NAME) "
        "or in a YAML --config file whose keys are the flag names (e.g. `cluster-name: prod`, "
        "`leader-elect: false`). Precedence: command line, then config file, then environment, then defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config",
        type=Path,
        default=_env_optional("CONFIG"),
        help="YAML file of settings keyed by flag name (env KUBE_NODE_CONFIG)",
    )
    for option, choices, text in (
        ("--log-level", LOG_LEVELS, "as the global --log-level"),
        ("--log-format", LOG_FORMATS, "as the global --log-format"),
    ):
        run.add_argument(option, default=argparse.SUPPRESS, choices=choices, help=text)
    run.add_argument(
        "--kubeconfig",
        default=_env_optional("KUBECONFIG_PATH"),
        help="kubeconfig file (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)",
    )
    run.add_argument("--context", default=_env_optional("CONTEXT"), help="kubeconfig context to use")
    run.add_argument(
        "--cluster-name",
        default=_env_optional("CLUSTER_NAME"),
        help="this cluster's identity: the tag on every machine kube-node makes, so it recognises its own; "
        "untracked machines with it are destroyed as orphans, so it must be unique among the clusters that share "
        "a cloud account (default: the uid of the kube-system namespace, read at start-up, which needs get on "
        "namespaces/kube-system; kube-node does not start if it can read neither)",
    )
    run.add_argument(
        "--simulator-dir",
        type=Path,
        default=_env_optional("SIMULATOR_DIR"),
        help="enable the simulator provider and keep its machines in this directory",
    )
    run.add_argument(
        "--simulator-seed",
        type=int,
        default=_env_optional("SIMULATOR_SEED"),
        help="seed the simulator's fault injection (which creates fail, which machines crash), to replay a run; "
        "default: random",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", str(_DEFAULT.workers))),
        help=f"concurrent Node reconciles, and so concurrent cloud calls (default {_DEFAULT.workers})",
    )
    run.add_argument(
        "--orphan-grace-period",
        type=float,
        default=float(_env("ORPHAN_GRACE_PERIOD", f"{_DEFAULT.orphan_grace:g}")),
        help=f"seconds before a machine with no Node is destroyed (default {_DEFAULT.orphan_grace:g})",
    )
    run.add_argument(
        "--sweep-interval",
        type=float,
        default=float(_env("SWEEP_INTERVAL", f"{_DEFAULT.sweep_interval:g}")),
        help="seconds between listings of each NodeClass's machines, which notice failed machines and orphans "
        f"(default {_DEFAULT.sweep_interval:g})",
    )
    run.add_argument(
        "--grpc-address",
        default=_env("GRPC_ADDRESS", _DEFAULT.grpc_address),
        help="where the cluster-autoscaler externalgrpc provider listens (host:port; empty disables it; "
        f"default {_DEFAULT.grpc_address})",
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
        action=argparse.BooleanOptionalAction,
        default=_env_bool("GRPC_INSECURE", False),
        help="serve the provider without TLS (anyone who reaches it can create and delete machines)",
    )
    run.add_argument(
        "--autoscaler-unneeded-time",
        type=float,
        default=float(_env("AUTOSCALER_UNNEEDED_TIME", f"{_PENDING.unneeded_time:g}")),
        help="pending-pod autoscaler: seconds a Node must be empty before it is removed "
        f"(default {_PENDING.unneeded_time:g})",
    )
    run.add_argument(
        "--autoscaler-batch-window",
        type=float,
        default=float(_env("AUTOSCALER_BATCH_WINDOW", f"{_PENDING.batch_window:g}")),
        help=f"pending-pod autoscaler: seconds to gather a burst of pending pods (default {_PENDING.batch_window:g})",
    )
    run.add_argument(
        "--autoscaler-max-total-nodes",
        type=int,
        default=_env_optional("AUTOSCALER_MAX_TOTAL_NODES"),
        help="pending-pod autoscaler: cap on the Nodes of all KubeNode-mode NodeSets (default none)",
    )
    run.add_argument(
        "--autoscaler-expander",
        default=_env("AUTOSCALER_EXPANDER", _PENDING.expander),
        choices=["least-waste", "priority", "price"],
        help=f"pending-pod autoscaler: how to choose among NodeSets that fit (default {_PENDING.expander})",
    )
    run.add_argument(
        "--autoscaler-utilization-threshold",
        type=float,
        default=float(_env("AUTOSCALER_UTILIZATION_THRESHOLD", f"{_PENDING.utilization_threshold:g}")),
        help="pending-pod autoscaler: a Node using less CPU and memory than this share may be consolidated "
        f"(default {_PENDING.utilization_threshold:g})",
    )
    run.add_argument(
        "--install-crds",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("INSTALL_CRDS", False),
        help="create or update the CRDs at start (the Helm chart installs them otherwise)",
    )
    run.add_argument(
        "--status-address",
        default=_env("STATUS_ADDRESS", _DEFAULT.status_address),
        help="where /metrics (Prometheus), /healthz and /readyz are served (host:port; empty disables; "
        f"default {_DEFAULT.status_address})",
    )
    run.add_argument(
        "--shutdown-grace-period",
        type=float,
        default=float(_env("SHUTDOWN_GRACE_PERIOD", f"{_DEFAULT.shutdown_grace:g}")),
        help="on SIGTERM, seconds to let reconciles in flight finish before the Lease is released "
        f"(default {_DEFAULT.shutdown_grace:g})",
    )
    run.add_argument(
        "--watch-idle-timeout",
        type=float,
        default=float(_env("WATCH_IDLE_TIMEOUT", f"{_DEFAULT.watch_idle_timeout:g}")),
        help="seconds a watch may go without a byte (event or bookmark) before it is presumed dead and opened "
        "again; the API server is asked to end each watch after two thirds of it, so a healthy one never is "
        f"(default {_DEFAULT.watch_idle_timeout:g})",
    )
    run.add_argument(
        "--api-request-timeout",
        type=float,
        default=float(_env("API_REQUEST_TIMEOUT", f"{_DEFAULT.api_request_timeout:g}")),
        help="seconds any other API request may wait for the server, its retries included "
        f"(default {_DEFAULT.api_request_timeout:g})",
    )
    run.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("LEADER_ELECT", _DEFAULT.leader_election.enabled),
        help="elect a leader on a Lease so that replicas > 1 are safe (default on)",
    )
    run.add_argument(
        "--leader-election-namespace",
        default=_env_optional("LEADER_ELECTION_NAMESPACE"),
        help="namespace of the Lease (default: the pod's namespace, else kube-system)",
    )
    run.add_argument(
        "--leader-election-lease-name",
        default=_env("LEADER_ELECTION_LEASE_NAME", _DEFAULT.leader_election.name),
        help=f"name of the Lease (default {_DEFAULT.leader_election.name})",
    )
    election = _DEFAULT.leader_election
    for flag, seconds, text in (
        (
            "lease-duration",
            election.lease_duration,
            "how long a standby waits after the leader's last renewal before taking over",
        ),
        (
            "renew-deadline",
            election.renew_deadline,
            "how long the leader tries to renew before it stops acting and exits",
        ),
        ("retry-period", election.retry_period, "how often candidates try to acquire, and the leader renews"),
    ):
        run.add_argument(
            f"--leader-election-{flag}",
            type=float,
            default=float(_env(f"LEADER_ELECTION_{flag.upper().replace('-', '_')}", f"{seconds:g}")),
            help=f"seconds: {text} (default {seconds:g})",
        )
    run.add_argument(
        "--pod-name",
        default=_env_optional("POD_NAME"),
        help="this process's pod (the chart sets it from the downward API): the leader labels it "
        f"{LABEL_LEADER}=true so the provider's Service reaches the replica that accepts writes",
    )
    run.add_argument("--pod-namespace", default=_env_optional("POD_NAMESPACE"), help="that pod's namespace")

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


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, with the settings of ``run --config`` folded in; exits on a usage error."""
    parser = build_parser()
    argv = list(argv)
    args = parser.parse_args(argv)
    if args.command == "run" and args.config is not None:
        # The file's settings go right after "run", so the command line's own flags still win.
        at = argv.index("run") + 1
        args = parser.parse_args([*argv[:at], *config_arguments(args.config, parser), *argv[at:]])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kube-node`` command; returns the exit code."""
    args = parse(sys.argv[1:] if argv is None else argv)
    configure_logging(args.log_level, args.log_format)
    if args.command == "run":
        return _run.run(run_options(args))
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


def run_options(args: argparse.Namespace) -> _run.RunOptions:
    """What ``kube-node run`` was told, as options."""
    return _run.RunOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        cluster=args.cluster_name or None,  # empty (e.g. `cluster-name:` in the file) is the default
        simulator_dir=args.simulator_dir,
        simulator_seed=args.simulator_seed,
        workers=args.workers,
        orphan_grace=args.orphan_grace_period,
        sweep_interval=args.sweep_interval,
        install_crds=args.install_crds,
        grpc_address=args.grpc_address,
        grpc_tls=_grpc_tls(args),
        status_address=args.status_address,
        shutdown_grace=args.shutdown_grace_period,
        watch_idle_timeout=args.watch_idle_timeout,
        api_request_timeout=args.api_request_timeout,
        leader_election=_run.LeaderElectionOptions(
            enabled=args.leader_elect,
            namespace=args.leader_election_namespace,
            name=args.leader_election_lease_name,
            lease_duration=args.leader_election_lease_duration,
            renew_deadline=args.leader_election_renew_deadline,
            retry_period=args.leader_election_retry_period,
        ),
        pending_pod_autoscaler=PendingPodAutoscalerSettings(
            unneeded_time=args.autoscaler_unneeded_time,
            batch_window=args.autoscaler_batch_window,
            max_total_nodes=args.autoscaler_max_total_nodes,
            expander=args.autoscaler_expander,
            utilization_threshold=args.autoscaler_utilization_threshold,
        ),
        pod_name=args.pod_name,
        pod_namespace=args.pod_namespace,
    )


def config_arguments(path: Path, parser: argparse.ArgumentParser) -> list[str]:
    """The ``run`` flags a YAML config file stands for; exits with a usage error naming the bad setting."""
    run_parser = _subparser(parser, "run")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        run_parser.error(f"config file {path}: {error}")
    if not isinstance(settings, dict):
        run_parser.error(f"config file {path}: expected a mapping of flag names to values")
    actions = {option: action for action in run_parser._actions for option in action.option_strings}
    arguments: list[str] = []
    for key, value in settings.items():
        action = actions.get(f"--{key}")
        if action is None or key in ("config", "help"):
            run_parser.error(f"config file {path}: unknown setting {key!r} (the settings are the flags of --help)")
        if isinstance(action, argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                run_parser.error(f"config file {path}: {key} must be true or false, not {value!r}")
            arguments.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, (dict, list)):
            run_parser.error(f"config file {path}: {key} must be a single value, not {value!r}")
        else:
            arguments.append(f"--{key}={'' if value is None else value}")
    return arguments


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)


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


def _env_bool(name: str, default: bool) -> bool:
    """The KUBE_NODE_<NAME> environment variable as true/false, or ``default``."""
    value = os.environ.get(f"KUBE_NODE_{name}")
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _env_optional(name: str) -> str | None:
    """The KUBE_NODE_<NAME> environment variable, or None."""
    return os.environ.get(f"KUBE_NODE_{name}")
