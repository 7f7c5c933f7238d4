"""Every setting of ``kube-node run``, declared once.

A :class:`Setting` says everything about one setting: its name (the flag ``--<name>`` and the config-file key
``<name>``), its type and choices, its help, its environment variable (``KUBE_NODE_<NAME>`` unless it says
otherwise), the field of :class:`~kube_node._run.RunOptions` it feeds (whose default is its default), and its
deprecated names. Everything else is derived from :data:`SETTINGS`:

- the flags of ``kube-node run`` (``kube_node.cli``), grouped by concern in ``--help``;
- the environment variables and the keys of the YAML ``--config`` file, read and checked here;
- :class:`RunOptions` from the values (:func:`run_options`);
- the settings table of ``docs/configuration.md`` and the ``config:`` schema of the Helm chart's
  ``values.schema.json``, written by ``hack/generate.sh`` (``python -m kube_node._settings``), whose
  ``--check`` fails when either is stale.

Precedence: the command line, then the config file, then the environment, then the default. A deprecated name
still works, below its new name at the same level, and each use of one is reported (:attr:`Resolved.deprecations`)
so that the command logs a warning naming the new one.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from autoscaler_provider import TLSFiles
from nodeset_controller.controllers import EXPANDERS

from ._run import LABEL_LEADER, RunOptions

ENV_PREFIX = "KUBE_NODE_"
_FROM_FIELD: Any = object()  # the default is the one of the options field the setting feeds
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
#: The types a setting may have, by the name its error messages give them.
_TYPES: dict[type, str] = {str: "str", Path: "str", int: "int", float: "float", bool: "bool"}


class SettingError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Setting:
    """One setting of ``kube-node run``."""

    name: str  #: the flag without its dashes, and the config-file key
    type: type  #: str, Path, int, float or bool
    concern: str  #: what it is about: the groups of ``--help`` and of the docs' table
    help: str  #: what it does (without the default: that is added from ``default``)
    #: the RunOptions field it feeds, dotted into nested options; None: read by the command itself
    field: str | None
    default: Any = _FROM_FIELD
    default_text: str | None = None  #: the default in words, where a value would not say it (None, empty)
    choices: tuple[str, ...] = ()
    unit: str = ""  #: shown after the default ("s")
    metavar: str | None = None
    env_name: str | None = None  #: when it is not KUBE_NODE_<NAME>
    #: names it had before, still accepted (flag, environment variable, config key) with a warning
    aliases: tuple[str, ...] = ()
    #: environment variables it was read from before, still read (below its own variable) with a warning
    env_aliases: tuple[str, ...] = ()
    in_file: bool = True  #: whether the config file may set it (all but --config itself)
    docs: str = ""  #: Markdown appended to the help in docs/configuration.md only (a link)

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"setting {self.name}: unsupported type {self.type}")
        if self.metavar is None and not self.choices and self.type is not bool:
            by_type = {int: "N", float: "SECONDS" if self.unit == "s" else "NUMBER", Path: "PATH"}
            object.__setattr__(self, "metavar", by_type.get(self.type, "TEXT"))
        if self.default is _FROM_FIELD:
            if self.field is None:
                raise TypeError(f"setting {self.name}: feeds no options field, so needs its own default")
            value: Any = RunOptions()
            for part in self.field.split("."):
                value = getattr(value, part)
            object.__setattr__(self, "default", value)

    @property
    def env(self) -> str:
        """Its environment variable."""
        return self.env_name or _env_for(self.name)

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    def default_words(self) -> str:
        """The default as ``--help`` and the docs say it."""
        if self.default_text is not None:
            return self.default_text
        value = self.default
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if value == "":
            return "empty"
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{text} {self.unit}" if self.unit else text

    def help_text(self) -> str:
        """The help with the default and the environment variable."""
        return f"{self.help} (default: {self.default_words()}; env {self.env})"

    def convert(self, text: str) -> Any:
        """The value a command line or environment string stands for; an empty string is the default None of a
        setting whose default is None (so ``--cluster-name=`` or ``cluster-name:`` means none given)."""
        if text == "" and self.default is None:
            return None
        if self.type is bool:
            word = text.strip().lower()
            if word not in _TRUE + _FALSE:
                raise SettingError(f"invalid bool value: {text!r} (true or false)")
            return word in _TRUE
        try:
            value = self.type(text)
        except ValueError:
            raise SettingError(f"invalid {_TYPES[self.type]} value: {text!r}") from None
        if self.choices and value not in self.choices:
            raise SettingError(f"invalid choice: {text!r} (choose from {', '.join(self.choices)})")
        return value

    def from_file(self, key: str, value: object) -> Any:
        """The value a config file's ``key: value`` stands for (``key`` is this setting's name or an alias)."""
        if self.type is bool:
            if not isinstance(value, bool):
                raise SettingError(f"{key} must be true or false, not {value!r}")
            return value
        if isinstance(value, (dict, list)):
            raise SettingError(f"{key} must be a single value, not {value!r}")
        try:
            return self.convert("" if value is None else str(value))
        except SettingError as error:
            raise SettingError(f"argument --{key}: {error}") from None


def _env_for(name: str) -> str:
    return ENV_PREFIX + name.upper().replace("-", "_")


def _combined_grpc_tls(values: Mapping[str, Any]) -> TLSFiles | None:
    """Mutual TLS from the three files, or None with --grpc-insecure (or no provider); anything in between is
    refused."""
    if values["grpc-insecure"] or not values["grpc-address"]:
        return None
    cert, key, client_ca = values["grpc-cert"], values["grpc-key"], values["grpc-client-ca"]
    if not (cert and key and client_ca):
        raise SettingError(
            "the cluster-autoscaler provider uses mutual TLS: give --grpc-cert, --grpc-key and --grpc-client-ca, "
            "or --grpc-insecure to serve it in plaintext, or --grpc-address= to disable it"
        )
    return TLSFiles(cert=cert, key=key, client_ca=client_ca)


#: RunOptions fields that several settings feed together, and how.
_COMBINED: dict[str, Callable[[Mapping[str, Any]], Any]] = {"grpc_tls": _combined_grpc_tls}

_ACCESS = "cluster access"
_IDENTITY = "identity"
_MACHINES = "machines"
_GRPC = "gRPC server (for the cluster-autoscaler)"
_JOIN = "joining machines"
_PENDING = "pending-pod autoscaler (NodeSets in KubeNode mode)"
_ELECTION = "leader election"
_LIFECYCLE = "lifecycle"
_OBSERVABILITY = "observability"
_POD = "in a pod"

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "config",
        Path,
        "configuration",
        "a YAML file of these settings keyed by flag name (`workers: 32`, `leader-elect: false`)",
        field=None,
        default=None,
        metavar="FILE",
        in_file=False,
    ),
    Setting(
        "kubeconfig",
        str,
        _ACCESS,
        "kubeconfig file",
        field="kubeconfig",
        default_text="in-cluster credentials, else $KUBECONFIG or ~/.kube/config",
        metavar="FILE",
        env_aliases=("KUBE_NODE_KUBECONFIG_PATH",),
    ),
    Setting(
        "context",
        str,
        _ACCESS,
        "kubeconfig context to use",
        field="context",
        default_text="the kubeconfig's current context",
        metavar="NAME",
    ),
    Setting(
        "watch-idle-timeout",
        float,
        _ACCESS,
        "seconds a watch may go without a byte (event or bookmark) before it is presumed dead and opened again; "
        "the API server is asked to end each watch after two thirds of it, so a healthy one never is",
        field="watch_idle_timeout",
        unit="s",
        docs="see [operate.md](operate.md#control-plane-faults-what-kube-node-notices-and-how-fast)",
    ),
    Setting(
        "api-request-timeout",
        float,
        _ACCESS,
        "seconds any other API request may wait for the server, its retries included",
        field="api_request_timeout",
        unit="s",
    ),
    Setting(
        "cluster-name",
        str,
        _IDENTITY,
        "this cluster's identity: the tag on every machine kube-node makes, so it recognises its own; untracked "
        "machines with it are destroyed as orphans, so it must be unique among the clusters that share a cloud "
        "account",
        field="cluster",
        default_text="the uid of the kube-system namespace, read at start-up, which needs get on "
        "namespaces/kube-system; kube-node does not start if it can read neither",
        metavar="NAME",
        docs="orphan collection only touches machines with it, in full: a tag the cloud cut short is not enough; "
        "see [the cluster's identity](#the-clusters-identity)",
    ),
    Setting(
        "workers",
        int,
        _MACHINES,
        "concurrent Node reconciles, and so concurrent cloud calls",
        field="workers",
        metavar="N",
    ),
    Setting(
        "orphan-grace-period",
        float,
        _MACHINES,
        "seconds before a machine with no Node is destroyed",
        field="orphan_grace",
        unit="s",
    ),
    Setting(
        "sweep-interval",
        float,
        _MACHINES,
        "seconds between listings of each NodeClass's machines, which notice failed machines and orphans",
        field="sweep_interval",
        unit="s",
    ),
    Setting(
        "simulator-dir",
        Path,
        _MACHINES,
        "enable the simulator provider and keep its machines in this directory",
        field="simulator_dir",
        default_text="no simulator",
        metavar="DIR",
    ),
    Setting(
        "simulator-seed",
        int,
        _MACHINES,
        "seed the simulator's fault injection (which creates fail, which machines crash), to replay a run",
        field="simulator_seed",
        default_text="random",
        metavar="N",
    ),
    Setting(
        "local-machines-dir",
        Path,
        _MACHINES,
        "enable the local provider (machines that are real kubelets on this host; needs root, containerd and "
        "a kubelet) and keep its machines in this directory",
        field="local_machines_dir",
        default_text="no local machines",
        metavar="DIR",
        docs=" See [the local provider](nodeclasses.md#the-local-provider).",
    ),
    Setting(
        "local-kubelet",
        Path,
        _MACHINES,
        "the kubelet binary local machines run",
        field="local_kubelet",
        default_text="kubelet on PATH",
        metavar="FILE",
    ),
    Setting(
        "join-api-server",
        str,
        _JOIN,
        "the API server's URL as new machines reach it: ${API_SERVER} in a NodeClass's user-data",
        field="join_api_server",
        default=None,
        default_text="from kube-public/cluster-info, else this process's own API server address",
        metavar="URL",
    ),
    Setting(
        "join-ca-file",
        Path,
        _JOIN,
        "the cluster's CA (PEM) for ${CA_CERT_BASE64} and ${CA_CERT_HASH} in a NodeClass's user-data",
        field="join_ca_file",
        default=None,
        default_text="from kube-public/cluster-info, else the CA this process trusts",
        metavar="FILE",
    ),
    Setting(
        "approve-kubelet-serving-certificates",
        bool,
        _JOIN,
        "approve the kubelet serving-certificate CSRs of kube-node's Nodes whose names and addresses are "
        "those of the Node's machine; others are left pending, with a Warning Event on the Node",
        field="approve_serving_certificates",
    ),
    Setting(
        "grpc-address",
        str,
        _GRPC,
        "where the gRPC server for the cluster-autoscaler (externalgrpc) listens, as host:port; empty disables it",
        field="grpc_address",
        metavar="HOST:PORT",
    ),
    Setting(
        "grpc-cert",
        Path,
        _GRPC,
        "the gRPC server's TLS certificate (PEM); with --grpc-key and --grpc-client-ca",
        field="grpc_tls",
        default=None,
        metavar="FILE",
    ),
    Setting("grpc-key", Path, _GRPC, "its private key (PEM)", field="grpc_tls", default=None, metavar="FILE"),
    Setting(
        "grpc-client-ca",
        Path,
        _GRPC,
        "the CA that client certificates must chain to; clients without one are refused",
        field="grpc_tls",
        default=None,
        metavar="FILE",
    ),
    Setting(
        "grpc-insecure",
        bool,
        _GRPC,
        "serve gRPC without TLS: anyone who reaches it can create and delete machines",
        field="grpc_tls",
        default=False,
    ),
    Setting(
        "pending-pod-autoscaler-batch-window",
        float,
        _PENDING,
        "seconds to gather a burst of pending pods into one decision",
        field="pending_pod_autoscaler.batch_window",
        unit="s",
        aliases=("autoscaler-batch-window",),
    ),
    Setting(
        "pending-pod-autoscaler-unneeded-time",
        float,
        _PENDING,
        "seconds a Node must be empty (or underused) before it is removed",
        field="pending_pod_autoscaler.unneeded_time",
        unit="s",
        aliases=("autoscaler-unneeded-time",),
    ),
    Setting(
        "pending-pod-autoscaler-utilization-threshold",
        float,
        _PENDING,
        "a Node using less of its CPU and memory than this share may be consolidated",
        field="pending_pod_autoscaler.utilization_threshold",
        metavar="SHARE",
        aliases=("autoscaler-utilization-threshold",),
    ),
    Setting(
        "pending-pod-autoscaler-max-total-nodes",
        int,
        _PENDING,
        "cap on the Nodes of all KubeNode-mode NodeSets together",
        field="pending_pod_autoscaler.max_total_nodes",
        default_text="no cap",
        metavar="N",
        aliases=("autoscaler-max-total-nodes",),
    ),
    Setting(
        "pending-pod-autoscaler-expander",
        str,
        _PENDING,
        "how to choose among NodeSets that fit: least-waste, priority (spec.autoscaling.priority) "
        "or price (the NodeClass's pricePerHour)",
        field="pending_pod_autoscaler.expander",
        choices=EXPANDERS,
        aliases=("autoscaler-expander",),
    ),
    Setting(
        "leader-elect",
        bool,
        _ELECTION,
        "elect a leader on a Lease so that replicas > 1 are safe",
        field="leader_election.enabled",
    ),
    Setting(
        "leader-election-namespace",
        str,
        _ELECTION,
        "namespace of the Lease",
        field="leader_election.namespace",
        default_text="the pod's namespace, else kube-system",
        metavar="NAMESPACE",
    ),
    Setting(
        "leader-election-lease-name",
        str,
        _ELECTION,
        "name of the Lease",
        field="leader_election.name",
        metavar="NAME",
    ),
    Setting(
        "leader-election-lease-duration",
        float,
        _ELECTION,
        "seconds a standby waits after the leader's last renewal before taking over",
        field="leader_election.lease_duration",
        unit="s",
    ),
    Setting(
        "leader-election-renew-deadline",
        float,
        _ELECTION,
        "seconds the leader tries to renew before it stops acting and exits (less than the lease duration)",
        field="leader_election.renew_deadline",
        unit="s",
    ),
    Setting(
        "leader-election-retry-period",
        float,
        _ELECTION,
        "seconds between a candidate's tries to acquire, and between the leader's renewals",
        field="leader_election.retry_period",
        unit="s",
    ),
    Setting(
        "shutdown-grace-period",
        float,
        _LIFECYCLE,
        "on SIGTERM, seconds to let reconciles in flight finish before the Lease is released",
        field="shutdown_grace",
        unit="s",
    ),
    Setting(
        "install-crds",
        bool,
        _LIFECYCLE,
        "create or update the CRDs at start; the Helm chart installs them otherwise",
        field="install_crds",
    ),
    Setting(
        "status-address",
        str,
        _OBSERVABILITY,
        "where /metrics (Prometheus), /healthz and /readyz are served, as host:port; empty disables them",
        field="status_address",
        metavar="HOST:PORT",
    ),
    Setting(
        "log-level",
        str,
        _OBSERVABILITY,
        "log verbosity",
        field=None,
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        docs="also before any command, for every command: `kube-node --log-level=DEBUG dev up`",
    ),
    Setting(
        "log-format",
        str,
        _OBSERVABILITY,
        "text for people, json for log pipelines",
        field=None,
        default="text",
        choices=("text", "json"),
        docs="also before any command",
    ),
    Setting(
        "pod-name",
        str,
        _POD,
        "this process's pod (the chart sets it from the downward API): the leader labels it "
        f"{LABEL_LEADER}=true so the gRPC Service reaches the replica that accepts writes",
        field="pod_name",
        metavar="NAME",
    ),
    Setting(
        "pod-namespace",
        str,
        _POD,
        "that pod's namespace, also from the downward API",
        field="pod_namespace",
        metavar="NAMESPACE",
    ),
)

#: Every setting by its name, and by each of its deprecated names.
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS} | {a: s for s in SETTINGS for a in s.aliases}
#: The settings of every command, not only ``run`` (they are flags of ``kube-node`` itself, too).
GLOBAL = ("log-level", "log-format")


def concerns() -> dict[str, list[Setting]]:
    """The settings by concern, in the table's order."""
    grouped: dict[str, list[Setting]] = {}
    for setting in SETTINGS:
        grouped.setdefault(setting.concern, []).append(setting)
    return grouped


@dataclass(frozen=True)
class Resolved:
    """The value of every setting, and the deprecated names that were used to set them."""

    values: Mapping[str, Any]
    deprecations: tuple[str, ...] = ()


def resolve(
    command_line: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    names: Iterable[str] | None = None,
) -> Resolved:
    """Each setting of ``names`` (default: all of them) from the command line (values keyed by setting name or
    alias, already converted), else the config file named by ``config`` (when it is among ``names``), else the
    environment, else its default. Raises :class:`SettingError` naming the bad setting."""
    wanted = [BY_NAME[n] for n in names] if names is not None else list(SETTINGS)
    deprecations: list[tuple[str, str]] = []
    given = _canonical(command_line, lambda alias, s: (f"the flag --{alias}", f"--{s.name}"), deprecations)
    from_env = _canonical(
        read_environment(environ, wanted),
        lambda alias, s: (f"the environment variable {_env_for(alias)}", s.env),
        deprecations,
    )
    for setting in wanted:
        for variable in setting.env_aliases:
            if variable in environ and setting.name not in from_env:
                try:
                    from_env[setting.name] = setting.convert(environ[variable])
                except SettingError as error:
                    raise SettingError(f"environment variable {variable}: {error}") from None
                deprecations.append((f"the environment variable {variable}", setting.env))
    from_file: dict[str, Any] = {}
    config = given.get("config", from_env.get("config"))
    if config is not None and "config" in (s.name for s in wanted):
        from_file = _canonical(
            read_config_file(config),
            lambda alias, s: (f"the key {alias} of config file {config}", s.name),
            deprecations,
        )
    values = {s.name: given.get(s.name, from_file.get(s.name, from_env.get(s.name, s.default))) for s in wanted}
    notices = tuple(f"{old} is deprecated and goes in the next release: use {new}" for old, new in deprecations)
    return Resolved(values, notices)


def _canonical(
    level: Mapping[str, Any],
    deprecation: Callable[[str, Setting], tuple[str, str]],
    deprecations: list[tuple[str, str]],
) -> dict[str, Any]:
    """One level's values keyed by setting name: a deprecated name is reported, and loses to its new name."""
    out = {name: value for name, value in level.items() if BY_NAME[name].name == name}
    for name, value in level.items():
        setting = BY_NAME[name]
        if setting.name != name:
            deprecations.append(deprecation(name, setting))
            out.setdefault(setting.name, value)
    return out


def read_environment(environ: Mapping[str, str], settings: Iterable[Setting] = SETTINGS) -> dict[str, Any]:
    """The settings the environment gives, keyed by the name (or deprecated name) whose variable is set."""
    found: dict[str, Any] = {}
    for setting in settings:
        for name, variable in ((setting.name, setting.env), *((a, _env_for(a)) for a in setting.aliases)):
            if variable in environ:
                try:
                    found[name] = setting.convert(environ[variable])
                except SettingError as error:
                    raise SettingError(f"environment variable {variable}: {error}") from None
    return found


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a YAML config file, keyed as in the file (a setting's name or deprecated name), each
    checked; raises :class:`SettingError` naming the file and the bad setting."""
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SettingError(f"config file {path}: {error}") from None
    if not isinstance(settings, dict):
        raise SettingError(f"config file {path}: expected a mapping of flag names to values")
    values: dict[str, Any] = {}
    for key, value in settings.items():
        setting = BY_NAME.get(str(key))
        if setting is None or not setting.in_file:
            raise SettingError(f"config file {path}: unknown setting {key!r} (the settings are the flags of --help)")
        try:
            values[str(key)] = setting.from_file(str(key), value)
        except SettingError as error:
            raise SettingError(f"config file {path}: {error}") from None
    return values


def run_options(values: Mapping[str, Any]) -> RunOptions:
    """The options the values of every setting stand for: each feeds its field; raises :class:`SettingError`
    when they do not go together."""
    options = RunOptions()
    for setting in SETTINGS:
        if setting.field is not None and setting.field not in _COMBINED:
            options = _replaced(options, setting.field.split("."), values[setting.name])
    return dataclasses.replace(options, **{name: combine(values) for name, combine in _COMBINED.items()})


def _replaced(options: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    new = _replaced(getattr(options, head), rest, value) if rest else value
    return dataclasses.replace(options, **{head: new})


# What hack/generate.sh writes from the table.

DOCS = Path("docs/configuration.md")
CHART_SCHEMA = Path("charts/kube-node/values.schema.json")
DOCS_BEGIN = "<!-- settings table: generated from kube_node/_settings.py by hack/generate.sh; do not edit -->"
DOCS_END = "<!-- end of the generated settings table -->"
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def docs_table() -> str:
    """The Markdown table of every setting, by concern, and of the deprecated names."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| setting (flag and config key) | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for concern, settings in concerns().items():
        lines.append(f"| **{concern}** | | | |")
        for s in settings:
            flag = f"`{s.flag}`, `--no-{s.name}`" if s.type is bool else f"`{s.flag}`"
            flag += f" ({', '.join(f'`{c}`' for c in s.choices)})" if s.choices else ""
            if not s.in_file:
                flag += " (not in the file)"
            meaning = s.help + (f"; {s.docs}" if s.docs else "")
            default = s.default_words() if s.default_text or s.default in (None, "") else f"`{s.default_words()}`"
            lines.append(f"| {flag} | `{s.env}` | {cell(default)} | {cell(meaning)} |")
    deprecated = [(a, s) for s in SETTINGS for a in s.aliases]
    if deprecated:
        lines += [
            "",
            "Deprecated names, still accepted until the next release (each use logs a warning naming the new one):",
            "",
            "| deprecated flag, config key and environment variable | use instead |",
            "|---|---|",
        ]
        lines += [f"| `--{a}`, `{a}:`, `{_env_for(a)}` | `{s.flag}`, `{s.name}:`, `{s.env}` |" for a, s in deprecated]
    return "\n".join(lines) + "\n"


def config_schema() -> dict[str, Any]:
    """The JSON schema of the chart's ``config:`` value: one property per config-file key."""
    properties: dict[str, Any] = {}
    for s in SETTINGS:
        if not s.in_file:
            continue
        properties[s.name] = {"description": _schema_description(s), **_schema_type(s)}
        for alias in s.aliases:
            properties[alias] = {"description": f"Deprecated: use {s.name}.", **_schema_type(s)}
    return {
        "type": "object",
        "description": "Other `kube-node run` settings by flag name (see `kube-node run --help`; generated from "
        "kube_node/_settings.py by hack/generate.sh).",
        "properties": properties,
        "additionalProperties": False,
    }


def _schema_description(s: Setting) -> str:
    text = s.help[0].upper() + s.help[1:]
    return f"{text} (default: {s.default_words()})."


def _schema_type(s: Setting) -> dict[str, Any]:
    """What kube-node accepts as the value, as a schema (a number may come as a string: helm --set gives one)."""
    empty_is_default = s.default is None
    if s.type is bool:
        return {"type": "boolean"}
    if s.choices:
        return {"enum": list(s.choices)}
    if s.type in (int, float):
        numeric = "integer" if s.type is int else "number"
        pattern = r"^[+-]?[0-9]+$" if s.type is int else _NUMBER
        if empty_is_default:
            pattern = f"({pattern})|^$"
        return {"type": [numeric, "string", *(["null"] if empty_is_default else [])], "pattern": pattern}
    return {"type": ["string", "null"]}


def generate(repo: Path, out: Path) -> None:
    """Write ``repo``'s docs/configuration.md and values.schema.json, regenerated from the table, under ``out``
    (``out`` may be ``repo``)."""
    text = (repo / DOCS).read_text()
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{repo / DOCS}: the markers of the settings table are missing:\n{DOCS_BEGIN}\n{DOCS_END}")
    docs = text[: begin + len(DOCS_BEGIN)] + "\n" + docs_table() + text[end:]
    schema = json.loads((repo / CHART_SCHEMA).read_text())
    schema["properties"]["config"] = config_schema()
    for path, content in ((DOCS, docs), (CHART_SCHEMA, json.dumps(schema, indent=2) + "\n")):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(content)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m kube_node._settings REPO OUT")
    generate(Path(sys.argv[1]), Path(sys.argv[2]))
