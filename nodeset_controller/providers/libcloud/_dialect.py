"""The dialect base: how a libcloud driver takes user data and tags and shows them back, and what every
dialect module builds on.

:class:`Dialect` is also the dialect of every driver kube-node has none for: user data goes to the first
create_node keyword it knows, and there are no tags, so such machines are recognised by name alone (see the
package's docstring). :class:`TagListDialect` is the ``key:value`` tag list that DigitalOcean and Linode share.
The helpers below it are the small ones at the libcloud boundary that dialects and the adapter both use.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._machine import TAG_CLUSTER, TAG_NODE, TAG_NODECLASS, ErrorClass, MachineSpec, MachineState, ProviderError
from ._errors import conflict, is_not_found, not_found

OUR_TAGS = (TAG_CLUSTER, TAG_NODE, TAG_NODECLASS)

# libcloud's NodeState values (strings), mapped to ours.
_STATES: dict[str, MachineState] = {
    "pending": MachineState.PENDING,
    "starting": MachineState.PENDING,
    "rebooting": MachineState.PENDING,
    "unknown": MachineState.PENDING,
    "running": MachineState.RUNNING,
    # A machine being resized or live-migrated is still up.
    "reconfiguring": MachineState.RUNNING,
    "migrating": MachineState.RUNNING,
    "updating": MachineState.RUNNING,
    "normal": MachineState.RUNNING,
    "stopped": MachineState.FAILED,
    "error": MachineState.FAILED,
    "suspended": MachineState.FAILED,
    "paused": MachineState.FAILED,
    "terminated": MachineState.TERMINATED,
    "stopping": MachineState.TERMINATING,
}


@dataclass(frozen=True)
class Keyless:
    """What a driver is built from when the NodeClass names no credentials Secret: the process's own identity
    in the cloud. ``args`` are the driver's first arguments and ``kwargs`` more of its keywords (both may hold
    credentials: never to be logged); ``secrets`` are masked out of every error message; ``source`` says where
    the credentials come from, for the NodeClass's Ready condition (no credential in it). A driver is built
    again when its dialect's ``keyless`` answers something else (the credentials were refreshed)."""

    source: str
    args: tuple[str, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


class Dialect:
    """How one libcloud driver takes user data and tags and shows them back. The base class is the fallback
    for drivers kube-node has no dialect for: user data goes to the first create_node keyword among
    ``_GENERIC_USER_DATA_KWARGS`` the driver takes (and create refuses with USER_DATA_UNSUPPORTED if it
    takes none, rather than boot a machine that can never join); there are no tags."""

    reads_tags: ClassVar[bool] = False
    #: create_node keyword that takes the location as a plain string, for drivers with no ``location``
    location_kwarg: ClassVar[str | None] = None
    user_data_kwarg: ClassVar[str | None] = None
    _GENERIC_USER_DATA_KWARGS: ClassVar[tuple[str, ...]] = (
        "ex_userdata",
        "ex_user_data",
        "ex_customdata",
        "ex_cloud_init",
        "cloud_init",
        "userdata",
        "user_data",
    )

    #: set where the driver has its own way to look an image up (``find_image``): says where it looked
    image_hint: ClassVar[str | None] = None
    #: the create_node arguments not named ``ex_*`` that the driver documents and extraCreateArgs may set (the
    #: CRD's pattern for extraCreateArgs names allows these besides ``ex_*``; keep the two in step)
    create_args: ClassVar[frozenset[str]] = frozenset()

    def driver_defaults(self, key: str | None, given: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the driver's constructor that kube-node sets where ``given`` (the credentials'
        and driverOptions' keywords) does not; ``key`` is the driver's first argument (never to be logged)."""
        return {}

    def keyless(self, options: Mapping[str, Any], timeout: float) -> Keyless | None:
        """The credentials of this process's own identity for a NodeClass that names no credentials Secret
        (``options``: its driverOptions), current (refreshed before they expire; may call the cloud, within
        ``timeout`` seconds); None where the driver has no such way and needs a Secret. Raises ProviderError
        when the identity is missing or refused."""
        return None

    def prepare_driver(self, driver: Any) -> None:
        """Adjust a newly built driver (once per driver)."""
        return None

    def resolve_args(self, driver: Any, extra: dict[str, Any], provider: str) -> dict[str, Any]:
        """extraCreateArgs as the driver takes them: what the user gives by id or name (subnets, security
        groups, networks, key pairs) looked up and turned into the driver's objects, and anything the driver
        would drop or refuse refused here, by name. Returns a new dict; may call the cloud."""
        return dict(extra)

    def size_as_is(self, driver: Any, wanted: str) -> Any | None:
        """A size the driver does not list but the cloud may have (``wanted`` used as its id), or None."""
        return None

    def list_kwargs(self, cluster: str) -> dict[str, Any]:
        """Keyword arguments of list_nodes: where possible, filter on our cluster server-side."""
        return {}

    def read_tags(self, node: Any) -> dict[str, str]:
        """Our tags on ``node``, decoded as well as the provider's charset allows."""
        return {}

    def owns(self, node: Any, cluster: str) -> bool:
        """Whether ``node`` is tagged as ``cluster``'s."""
        return self.read_tags(node).get(TAG_CLUSTER) == cluster

    def cut_tags(self, node: Any) -> frozenset[str]:
        """Which of our tags on ``node`` may have been cut to the provider's length limit, so that
        ``read_tags`` gives only the start of the value sent (a value exactly at the limit counts too)."""
        return frozenset()

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        """Put ``spec.tags`` into create_node's ``kwargs``, merged with the user's ``extra`` arguments."""
        return None

    def find_image(self, driver: Any, wanted: str) -> Any | None:
        """The image called or numbered ``wanted``, or None. Only called when ``image_hint`` is set."""
        return None

    def state(self, node: Any) -> MachineState:
        """Where ``node`` is in its life, from libcloud's NodeState (a string)."""
        return _STATES.get(str(node.state), MachineState.PENDING)

    def add_user_data(
        self, kwargs: dict[str, Any], extra: dict[str, Any], user_data: str, driver: Any, provider: str
    ) -> None:
        """Put the rendered user data into create_node's ``kwargs``, refusing a second copy in ``extra``."""
        if not user_data:
            return
        keyword = self.user_data_kwarg
        if keyword is None:
            keyword = next(
                (k for k in self._GENERIC_USER_DATA_KWARGS if accepts(driver.create_node, k, strict=True)), None
            )
        if keyword is None:
            raise ProviderError(
                f"{provider}: kube-node does not know how this driver's create_node takes user "
                "data, and the machine could not join the cluster without it",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="USER_DATA_UNSUPPORTED",
            )
        if keyword in extra:
            raise conflict(provider, keyword, "userData")
        kwargs[keyword] = user_data


class TagListDialect(Dialect):
    """Drivers whose tags are a flat list of strings: ours are ``key:value``, sanitised to the tag charset
    ``[A-Za-z0-9_:-]`` with ``.`` becoming ``_``, and read from ``node.extra["tags"]``. Kubernetes names never
    contain ``_``, so ``_`` reads back as ``.``. A tag is cut to the driver's length limit (``_MAX``) and reads
    back cut."""

    reads_tags = True
    _INVALID: ClassVar[re.Pattern[str]] = re.compile(r"[^A-Za-z0-9_:-]")
    _MAX: ClassVar[int] = 255

    def _tag(self, key: str, value: str) -> str:
        return f"{key}:{self._INVALID.sub('-', value.replace('.', '_'))}"[: self._MAX]

    def _tags(self, spec: MachineSpec) -> list[str]:
        return [self._tag(key, value) for key, value in spec.tags.items()]

    def _raw(self, node: Any) -> dict[str, str]:
        found: dict[str, str] = {}
        for tag in node.extra.get("tags") or []:
            key, sep, value = str(tag).partition(":")
            if sep and key in OUR_TAGS:
                found[key] = value
        return found

    def read_tags(self, node: Any) -> dict[str, str]:
        return {key: value.replace("_", ".") for key, value in self._raw(node).items()}

    def owns(self, node: Any, cluster: str) -> bool:
        raw = self._raw(node).get(TAG_CLUSTER)
        return raw is not None and self._tag(TAG_CLUSTER, cluster) == f"{TAG_CLUSTER}:{raw}"

    def cut_tags(self, node: Any) -> frozenset[str]:
        return frozenset(key for key, value in self._raw(node).items() if len(f"{key}:{value}") >= self._MAX)


# -- small helpers at the libcloud boundary ------------------------------------------------------------


def pick(items: list[Any], wanted: str, *, provider: str, what: str) -> Any | None:
    """The item whose id, else name, else slug is ``wanted``; a name shared by several ids is ambiguous."""
    for item in items:
        if str(item.id) == wanted:
            return item
    by_name = [item for item in items if str(item.name) == wanted]
    if len({str(item.id) for item in by_name}) > 1:
        ids = ", ".join(sorted({str(item.id) for item in by_name})[:10])
        raise ProviderError(
            f"{provider}: {what} name {wanted!r} matches several {what}s ({ids}); give the id",
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code=f"{what.upper()}_AMBIGUOUS",
        )
    if by_name:
        return by_name[0]
    for item in items:
        if (getattr(item, "extra", None) or {}).get("slug") == wanted:
            return item
    return None


def parameters_of(function: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return {}


def accepts(function: Any, name: str, *, strict: bool = False) -> bool:
    """Whether ``function`` takes keyword ``name``; with ``strict``, a ``**kwargs`` catch-all does not count."""
    parameters = parameters_of(function)
    if name in parameters:
        return True
    return not strict and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def string_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def invalid_argument(provider: str, message: str) -> ProviderError:
    """An extraCreateArgs value the driver cannot take, said in ``message``."""
    return ProviderError(
        f"{provider}: extraCreateArgs {message}",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="INVALID_CREATE_ARGUMENT",
    )


def references(value: Any, *, provider: str, argument: str) -> list[str]:
    """The ids or names in an extraCreateArgs value that names cloud resources: one, or a list, each a string
    or ``{id: ...}`` or ``{name: ...}``."""
    items = value if isinstance(value, list) else [value]
    found = []
    for given in items:
        item = next(iter(given.values())) if isinstance(given, dict) and len(given) == 1 else given
        if isinstance(given, dict) and not set(given) <= {"id", "name"}:
            item = None
        if not isinstance(item, str | int) or isinstance(item, bool) or str(item) == "":
            raise invalid_argument(
                provider, f"{argument} must name each resource by an id or name, or as {{id: ...}} or {{name: ...}}"
            )
        found.append(str(item))
    return found


def look_up(items: list[Any], wanted: list[str], *, provider: str, what: str, hint: str) -> list[Any]:
    """The item of ``items`` each of ``wanted`` names (by id, else by name: see :func:`pick`), in order."""
    resolved = []
    for one in wanted:
        item = pick(items, one, provider=provider, what=what)
        if item is None:
            raise not_found(provider, what, one, hint)
        resolved.append(item)
    return resolved


def listed(call: Callable[[], Any]) -> list[Any]:
    """What a listing call returns; nothing where the cloud answers that the ids asked for do not exist."""
    try:
        return list(call() or [])
    except Exception as error:
        if is_not_found(error):
            return []
        raise
