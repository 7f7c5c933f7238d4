"""The libcloud adapter: machines from any Apache Libcloud compute provider named in a NodeClass.

libcloud is untyped and its drivers differ in small, sharp ways (which keyword takes user data, where tags
go and whether they come back, whether create_node takes a location at all). Those differences live in one
:class:`_Dialect` per driver below; everything above them speaks only :class:`MachineProvider`'s types.

How each driver's machines carry kube-node's tags (TAG_CLUSTER, TAG_NODE, TAG_NODECLASS), and how they are
read back to recognise our machines:

- ec2: EC2 tags, through ``ex_metadata``; read from ``node.extra["tags"]``; exact values. ``list_nodes`` is
  also filtered on the cluster tag server-side. The machine name is the ``Name`` tag, and the machine name
  doubles as the RunInstances ClientToken, so EC2 itself refuses to make a second machine of that name.
- gce: labels (``ex_labels``; values sanitised to GCE's ``[a-z0-9_-]{0,63}``, ``.`` becoming ``_``) for
  people and the console, and the exact values again as instance metadata (``ex_metadata``, next to
  ``user-data``); read back from the metadata, falling back to the labels (cut at 63 characters, see below).
- openstack: server metadata (``ex_metadata``); read from ``node.extra["metadata"]``; exact values.
- digitalocean and linode: tags, a list of ``key:value`` strings (``ex_create_attr["tags"]`` for
  digitalocean, whose create_node has no ``ex_tags``; ``ex_tags`` for linode), sanitised to the tag charset
  ``[A-Za-z0-9_:-]`` with ``.`` becoming ``_``; read from ``node.extra["tags"]``. Kubernetes names never
  contain ``_``, so ``_`` reads back as ``.``. A tag is cut to the length limit (255 characters for
  digitalocean, 50 for linode, where a Node name of more than 35 characters no longer fits) and reads back
  cut.
- equinixmetal: sent as device tags, but the driver does not expose tags on the nodes it returns.
- every other driver: no tags.

A machine whose node name tag may have been cut comes back with ``node_name_truncated``: its ``node_name`` is
only the start of its Node's name, and the Node must be found by the full machine name. A cut cluster tag
reads the same for every cluster whose name starts the same, so such a machine comes back with
``cluster=None`` (below). A machine just created or found by ``create`` carries the exact values it was sent.

Where tags cannot be read back (equinixmetal, and drivers without a dialect here), our machines are
recognised by name alone: a node counts as ours if its name has the shape :func:`machine_name` produces
(``<dns-label>-<8 hex digits>``). Such machines come back with ``cluster=None``, which tells callers that
ownership was inferred, not proven: never garbage-collect one that no Node claims.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..api import NodeClass
from ._machine import (
    TAG_CLUSTER,
    TAG_NODE,
    TAG_NODECLASS,
    ErrorClass,
    Machine,
    MachineSpec,
    MachineState,
    ProviderError,
    QuotaExceededError,
)

_log = logging.getLogger(__name__)

#: Builds one libcloud driver; called once per thread that uses the provider.
DriverFactory = Callable[[], Any]
_Nodes = list[Any]  # libcloud Nodes; an alias, since LibcloudProvider.list shadows the builtin in its body

_OUR_TAGS = (TAG_CLUSTER, TAG_NODE, TAG_NODECLASS)
_DEFAULT_TIMEOUT = 60.0
#: How long one listing of the account's machines answers every get, list and create of a provider (seconds):
#: about two of the NodeController's boot polls (1 s), so that however many Nodes boot, a NodeClass costs
#: one list call per interval instead of one per booting Node per second.
LISTING_MAX_AGE = 2.0
#: How long a machine this provider created is taken to exist while listings do not show it yet (clouds'
#: listings lag behind their creates), before it is believed gone (seconds).
_UNLISTED_GRACE = 300.0
_MAX_DETAIL = 600

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

# libcloud's EC2 driver maps only four instance states and reports the rest as UNKNOWN; its raw state
# is in extra["status"], and a stopped instance must not look Pending forever.
_EC2_RAW_STATES: dict[str, MachineState] = {
    "stopping": MachineState.TERMINATING,
    "shutting-down": MachineState.TERMINATING,
    "stopped": MachineState.FAILED,
}

# The names machine_name() produces: a DNS label, a dash, the first 8 hex digits of the Node's uid.
_MACHINE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9a-f]{8}$")


class LibcloudProvider:
    """A :class:`MachineProvider` backed by the libcloud compute driver that ``nodeclass.spec.provider``
    names.

    Drivers are not thread-safe, so each thread gets its own, built lazily by ``driver_factory``; so are the
    size, image and location a NodeClass resolves to, which are looked up once per thread and cached.
    Credentials are kept only to build drivers and to scrub them out of error messages; they are never
    logged.

    Every get, list and create reads one shared listing of the account, at most ``listing_max_age`` seconds
    old (see :class:`_SharedListing`); destroy, and a create after one whose outcome is unknown, list afresh,
    since a machine they missed would outlive its Node or get a twin. A machine this provider created is
    shown until a listing shows it (or for ``_UNLISTED_GRACE``), so a get right after a create never reports
    it missing, whatever the listing's age or the cloud's lag.
    """

    def __init__(
        self,
        nodeclass: NodeClass,
        credentials: Mapping[str, str],
        cluster: str,
        *,
        driver_factory: DriverFactory | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        listing_max_age: float = LISTING_MAX_AGE,
    ) -> None:
        self._nodeclass = nodeclass
        self._provider = nodeclass.spec.provider
        self._cluster = cluster
        self._credentials = dict(credentials)
        self._timeout = timeout
        self._factory: DriverFactory = driver_factory or self._default_driver
        self._dialect = _dialect_for(self._provider)
        self._local = threading.local()
        self._listing = _SharedListing(self._fetch_ours, listing_max_age)
        self._lock = threading.Lock()
        #: machines created here and not yet seen in a listing: name -> (monotonic time of the create, node)
        self._unlisted: dict[str, tuple[float, Any]] = {}
        #: names whose last create failed without saying whether the machine was made
        self._unsure: set[str] = set()

    def __repr__(self) -> str:
        return f"LibcloudProvider(provider={self._provider!r}, nodeclass={self._nodeclass.metadata.name!r})"

    @property
    def provider(self) -> str:
        """The libcloud provider name, e.g. ``ec2``."""
        return self._provider

    # -- MachineProvider -------------------------------------------------------------------------------

    def create(self, spec: MachineSpec) -> Machine:
        """Create machine ``spec.name`` or, if a machine of ours by that name exists, return it.

        Only EC2 takes an idempotency token: elsewhere, a create that failed without saying whether the
        machine was made (a timeout, a dropped connection, a 5xx) may have made it. The next create of that
        name then looks in a listing started after it asked, never the shared one from before, and finds
        the machine instead of making a second."""
        with self._lock:
            unsure = spec.name in self._unsure
        existing = self._find(spec.name, fresh=unsure)
        if unsure:
            with self._lock:
                self._unsure.discard(spec.name)  # only now: a failed listing must leave the next one fresh too
        if existing is not None:
            _log.info(
                "%s machine %s already exists (id %s); not creating another", self._provider, spec.name, existing.id
            )
            return self._to_machine(existing, spec)
        driver = self._driver()
        kwargs = self._create_kwargs(driver, spec)
        try:
            node = self._call(f"create machine {spec.name}", lambda: driver.create_node(**kwargs))
        except ProviderError as error:
            if not _refused(error):
                with self._lock:
                    self._unsure.add(spec.name)
            raise
        if isinstance(node, list):  # EC2 returns a list when asked for more than one instance
            node = node[0]
        with self._lock:
            self._unlisted[spec.name] = (time.monotonic(), node)
        machine = self._to_machine(node, spec)
        _log.info("%s created machine %s (id %s) for node %s", self._provider, spec.name, machine.id, spec.node_name)
        return machine

    def get(self, name: str) -> Machine | None:
        """Return our machine called ``name``, preferring a live one over a terminated one."""
        node = self._find(name)
        return None if node is None else self._to_machine(node)

    def list(self) -> list[Machine]:
        """Return every machine of this cluster that this provider's account shows (see the module's
        docstring for how each driver's machines are recognised)."""
        return [self._to_machine(node) for node in self._list_ours()]

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy every live machine of ours called ``name`` (with ``machine_id``, only that one); succeed if
        there is none."""
        driver = self._driver()
        try:
            self._destroy(driver, name, machine_id)
        finally:
            self._listing.invalidate()  # it may show the machine alive; the next get lists again
        if machine_id is not None:
            return  # a duplicate went; the machine of that name that stays is still ours to remember
        with self._lock:
            self._unlisted.pop(name, None)
            self._unsure.discard(name)  # the fresh listing above destroyed whatever a create had made

    def _destroy(self, driver: Any, name: str, machine_id: str | None) -> None:
        for node in self._list_ours(fresh=True):
            if node.name != name or _node_state(node, self._provider) is MachineState.TERMINATED:
                continue
            if machine_id is not None and str(node.id) != machine_id:
                continue
            try:
                done = driver.destroy_node(node)
            except Exception as error:
                if _is_not_found(error):
                    _log.info("%s machine %s (id %s) was already gone", self._provider, name, node.id)
                    continue
                raise self._error(error, f"destroy machine {name} (id {node.id})") from error
            if done is False:
                raise ProviderError(
                    f"{self._provider}: destroy machine {name} (id {node.id}) failed: the "
                    "provider did not accept the request; it will be retried",
                    code="DESTROY_FAILED",
                )
            _log.info("%s destroying machine %s (id %s)", self._provider, name, node.id)

    def validate(self) -> str:
        """Resolve the NodeClass against the provider without making anything: the driver is built from the
        credentials, the extraCreateArgs are checked against create_node's signature and the user data's
        keyword, and the location, size and image are looked up afresh (list_locations, list_sizes, the image
        lookup: authenticated calls on most drivers, so rejected credentials show here too), then remembered for
        this thread's creates. Returns what they resolved to."""
        nc = self._nodeclass.spec
        size, image, where = nc.size, nc.image, nc.location
        if not size or not image:
            raise ProviderError(
                f"{self._provider}: NodeClass {self._nodeclass.metadata.name} must set size and image",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_NODECLASS",
            )
        driver = self._driver()
        extra = self._extra_args(driver)
        # Where the user data would go, and that extraCreateArgs does not set it too (on copies: nothing is kept).
        self._dialect.add_user_data({}, dict(extra), nc.user_data or "", driver, self._provider)
        resolved: dict[tuple[str, str], Any] = self._local.resolved
        parts = []
        location = None
        if where:
            if self._dialect.location_kwarg is not None:
                if self._dialect.location_kwarg in extra:
                    raise _conflict(self._provider, self._dialect.location_kwarg, "location")
                parts.append(f"location {where}")
            else:
                location = self._find_location(driver, where)
                resolved[("location", where)] = location
                parts.append(f"location {_described(location)}")
        found_size = self._find_size(driver, size, location)
        resolved[("size", size)] = found_size
        found_image = self._find_image(driver, image)
        resolved[("image", image)] = found_image
        return ", ".join([f"size {_described(found_size)}", f"image {_described(found_image)}", *parts])

    # -- drivers ---------------------------------------------------------------------------------------

    def _driver(self) -> Any:
        driver = getattr(self._local, "driver", None)
        if driver is None:
            try:
                driver = self._factory()
            except ProviderError:
                raise
            except Exception as error:
                raise self._error(error, "set up the libcloud driver") from error
            _apply_timeout(driver, self._timeout)
            self._local.driver = driver
            self._local.resolved = {}
        return driver

    def _default_driver(self) -> Any:
        """``get_driver(provider)(key, secret, **other credentials, **driverOptions, timeout=...)``."""
        from libcloud.compute.providers import get_driver  # noqa: PLC0415 - the driver registry is slow to import

        try:
            driver_cls = get_driver(self._provider)
        except AttributeError:
            raise ProviderError(
                f"{self._provider}: libcloud has no compute provider of that name; see "
                "libcloud.compute.types.Provider for the names it knows",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="UNKNOWN_PROVIDER",
            ) from None
        creds = dict(self._credentials)
        args = [creds.pop("key")] if "key" in creds else []
        if "secret" in creds:
            if not args:
                raise ProviderError(
                    f"{self._provider}: the credentials Secret has 'secret' but no 'key'",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREDENTIALS",
                )
            args.append(creds.pop("secret"))
        # The CRD keeps driverOptions to strings and integers; "true" and "false" are the driver's booleans
        # (secure: "false" for a plain-HTTP private endpoint, for example).
        options: dict[str, Any] = {
            key: {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
            for key, value in self._nodeclass.spec.driver_options.items()
        }
        clash = sorted(set(creds) & set(options))
        if clash:
            raise ProviderError(
                f"{self._provider}: {', '.join(clash)} is set both in the credentials Secret and "
                "in driverOptions; keep it in one place",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_DRIVER_OPTIONS",
            )
        kwargs: dict[str, Any] = {**creds, **options}
        if "timeout" not in kwargs and _accepts(driver_cls.__init__, "timeout"):
            kwargs["timeout"] = _connection_timeout(getattr(driver_cls, "connectionCls", None), self._timeout)
        try:
            try:
                return driver_cls(*args, **kwargs)
            except TypeError:
                if "timeout" not in kwargs or "timeout" in options:
                    raise
                # Some drivers take no keyword arguments at all, whatever their signatures say (DigitalOcean's
                # __new__ hands them to object.__new__); _apply_timeout sets their connections' timeout.
                del kwargs["timeout"]
                return driver_cls(*args, **kwargs)
        except TypeError as error:
            # Name the options, never the credentials' values.
            raise ProviderError(
                f"{self._provider}: the driver rejected its arguments ({error}); check "
                f"driverOptions ({', '.join(sorted(options)) or 'none'}) and the credentials "
                f"Secret's keys ({', '.join(sorted(self._credentials)) or 'none'})",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_DRIVER_OPTIONS",
            ) from None

    def _call(self, action: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ProviderError:
            raise
        except Exception as error:
            raise self._error(error, action) from error

    def _error(self, error: BaseException, action: str) -> ProviderError:
        return classify_error(error, provider=self._provider, action=action, redact=self._credentials.values())

    # -- finding our machines --------------------------------------------------------------------------

    def _list_ours(self, *, fresh: bool = False) -> _Nodes:
        """Our machines: the shared listing (with ``fresh``, one started after this call), and the machines
        created here that no listing has shown yet."""
        nodes = self._listing.nodes(fresh=fresh)
        now = time.monotonic()
        with self._lock:
            if not self._unlisted:
                return nodes
            listed = {str(node.id) for node in nodes}
            unlisted = []
            for name, (created, node) in list(self._unlisted.items()):
                if str(node.id) in listed or now - created >= _UNLISTED_GRACE:
                    del self._unlisted[name]
                else:
                    unlisted.append(node)
        return [*nodes, *unlisted]  # listed first: _find prefers what the cloud shows now

    def _fetch_ours(self) -> _Nodes:
        driver = self._driver()
        kwargs = self._dialect.list_kwargs(self._cluster)
        nodes = self._call("list machines", lambda: driver.list_nodes(**kwargs))
        return [node for node in nodes if self._is_ours(node)]

    def _find(self, name: str, *, fresh: bool = False) -> Any | None:
        matches = [node for node in self._list_ours(fresh=fresh) if node.name == name]
        if not matches:
            return None
        live = [node for node in matches if _node_state(node, self._provider) is not MachineState.TERMINATED]
        return (live or matches)[0]

    def _is_ours(self, node: Any) -> bool:
        if self._dialect.reads_tags:
            return self._dialect.owns(node, self._cluster)
        return bool(_MACHINE_NAME.match(str(node.name)))

    def _to_machine(self, node: Any, spec: MachineSpec | None = None) -> Machine:
        tags = self._dialect.read_tags(node)
        cut = self._dialect.cut_tags(node)
        cluster = tags.get(TAG_CLUSTER)
        if self._dialect.reads_tags and self._dialect.owns(node, self._cluster):
            cluster = self._cluster  # exact, even where the tag had to be sanitised
        if TAG_CLUSTER in cut:
            # The cut tag reads the same for every cluster whose name starts the same: not proof that the
            # machine is this cluster's, and the sweep must never collect another cluster's machines.
            cluster = None
        if spec is not None:
            # The machine just created or found for spec (its name is spec's): what we sent is exact, where
            # the driver shows the tags cut or not at all.
            tags, cut = spec.tags, frozenset()
            cluster = spec.cluster
        state = _node_state(node, self._provider)
        return Machine(
            name=str(node.name),
            id=str(node.id),
            state=state,
            node_name=tags.get(TAG_NODE),
            node_name_truncated=TAG_NODE in cut,
            nodeclass=tags.get(TAG_NODECLASS),
            cluster=cluster,
            created_at=_created_at(node),
            private_ips=tuple(str(ip) for ip in node.private_ips or ()),
            public_ips=tuple(str(ip) for ip in node.public_ips or ()),
            error=_failure_reason(node) if state is MachineState.FAILED else None,
            extra={"provider": self._provider, "libcloud_state": str(node.state)},
        )

    # -- building create_node's arguments ---------------------------------------------------------------

    def _create_kwargs(self, driver: Any, spec: MachineSpec) -> dict[str, Any]:
        nc = self._nodeclass.spec
        size, image, where = nc.size, nc.image, nc.location
        if not size or not image:
            raise ProviderError(
                f"{self._provider}: NodeClass {self._nodeclass.metadata.name} must set size and image",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_NODECLASS",
            )
        extra = self._extra_args(driver)
        kwargs: dict[str, Any] = {"name": spec.name}
        location = None
        if where:
            if self._dialect.location_kwarg is not None:
                if self._dialect.location_kwarg in extra:
                    raise _conflict(self._provider, self._dialect.location_kwarg, "location")
                kwargs[self._dialect.location_kwarg] = where
            else:
                location = self._resolved("location", where, lambda: self._find_location(driver, where))
                kwargs["location"] = location
        kwargs["size"] = self._resolved("size", size, lambda: self._find_size(driver, size, location))
        kwargs["image"] = self._resolved("image", image, lambda: self._find_image(driver, image))
        self._dialect.add_user_data(kwargs, extra, spec.user_data, driver, self._provider)
        self._dialect.add_tags(kwargs, extra, spec)
        for name, value in extra.items():
            kwargs.setdefault(name, value)
        return kwargs

    def _extra_args(self, driver: Any) -> dict[str, Any]:
        """The NodeClass's extraCreateArgs, checked against the driver's create_node signature so that a typo
        fails here, by name, instead of as a TypeError from deep inside libcloud."""
        extra: dict[str, Any] = {}
        for arg in self._nodeclass.spec.extra_create_args:
            if not arg.name.startswith("ex_"):
                raise ProviderError(
                    f"{self._provider}: extraCreateArgs name {arg.name!r} must start with 'ex_'",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREATE_ARGUMENT",
                )
            if not _accepts(driver.create_node, arg.name):
                known = [p for p in _parameters(driver.create_node) if p.startswith("ex_")]
                raise ProviderError(
                    f"{self._provider}: create_node takes no argument {arg.name!r} (from "
                    f"extraCreateArgs); it takes {', '.join(known) or 'no ex_ arguments'}",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREATE_ARGUMENT",
                )
            extra[arg.name] = arg.value
        return extra

    def _resolved(self, what: str, wanted: str, look_up: Callable[[], Any]) -> Any:
        cache: dict[tuple[str, str], Any] = self._local.resolved
        if (what, wanted) not in cache:
            cache[(what, wanted)] = look_up()
        return cache[(what, wanted)]

    def _find_location(self, driver: Any, wanted: str) -> Any:
        locations = self._call("list locations", driver.list_locations)
        found = _pick(locations, wanted, provider=self._provider, what="location")
        if found is None:
            names = ", ".join(sorted(str(loc.name) for loc in locations)[:30])
            raise _not_found(self._provider, "location", wanted, f"known locations: {names}")
        return found

    def _find_size(self, driver: Any, wanted: str, location: Any) -> Any:
        if location is not None and _accepts(driver.list_sizes, "location"):
            sizes = self._call("list sizes", lambda: driver.list_sizes(location=location))
        else:
            sizes = self._call("list sizes", driver.list_sizes)
        found = _pick(sizes, wanted, provider=self._provider, what="size")
        if found is None:
            where = f" in location {location.name}" if location is not None else ""
            raise _not_found(self._provider, "size", wanted, f"no size has that id or name{where}")
        return found

    def _find_image(self, driver: Any, wanted: str) -> Any:
        if self._dialect.image_hint is not None:
            try:
                image = self._dialect.find_image(driver, wanted)
            except Exception as error:
                if not _is_not_found(error):
                    raise self._error(error, f"look up image {wanted}") from error
                image = None
            if image is None:
                raise _not_found(self._provider, "image", wanted, self._dialect.image_hint)
            return image
        images = self._call("list images", driver.list_images)
        found = _pick(images, wanted, provider=self._provider, what="image")
        if found is None and _overrides(driver, "get_image"):
            try:
                found = driver.get_image(wanted)
            except Exception as error:
                if not _is_not_found(error):
                    raise self._error(error, f"look up image {wanted}") from error
                found = None
        if found is None:
            raise _not_found(self._provider, "image", wanted, "no image has that id or name")
        return found


# -- the shared listing -------------------------------------------------------------------------------


@dataclass
class _Flight:
    """One listing call: who started it when, and what it returned."""

    seq: int
    started: float  #: monotonic
    done: threading.Event = field(default_factory=threading.Event)
    nodes: _Nodes = field(default_factory=list)
    error: BaseException | None = None


class _SharedListing:
    """One listing of the account's machines, shared by every thread of a provider for ``max_age`` seconds.

    A caller within ``max_age`` of the last listing's start gets that listing; a caller that comes while a
    listing runs waits for it instead of starting another, so many threads polling at once cost one call. A
    ``fresh`` caller gets a listing started after it asked (it must see every change made before). A failure
    is not kept: the callers waiting on that listing get its error, and the next caller lists again.
    ``invalidate`` makes every listing started so far unusable.
    """

    def __init__(self, fetch: Callable[[], _Nodes], max_age: float) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._lock = threading.Lock()
        self._started = 0  #: listings started so far; a listing's seq is its number
        self._valid_from = 1  #: the first seq that may still be used
        self._last: _Flight | None = None  #: the newest listing that succeeded
        self._running: _Flight | None = None  #: the newest listing started, while it runs

    def nodes(self, *, fresh: bool = False) -> _Nodes:
        """The listing, at most ``max_age`` old, or started after this call with ``fresh``."""
        with self._lock:
            now = time.monotonic()
            oldest = self._started + 1 if fresh else self._valid_from
            last = self._last
            if last is not None and last.seq >= oldest and now - last.started < self._max_age:
                return last.nodes
            running = self._running
            if running is not None and running.seq >= oldest:
                flight, mine = running, False
            else:
                self._started += 1
                flight = self._running = _Flight(self._started, now)
                mine = True
        if mine:
            self._run(flight)
        else:
            flight.done.wait()
        if flight.error is not None:
            # Each waiter raises its own copy: one exception raised in many threads would share a traceback.
            raise flight.error if mine else copy.copy(flight.error)
        return flight.nodes

    def invalidate(self) -> None:
        """Forget every listing started so far (a machine was destroyed: they may show it alive)."""
        with self._lock:
            self._valid_from = self._started + 1
            self._last = None

    def _run(self, flight: _Flight) -> None:
        try:
            flight.nodes = self._fetch()
        except BaseException as error:
            flight.error = error
        with self._lock:
            if self._running is flight:
                self._running = None
            usable = flight.error is None and flight.seq >= self._valid_from
            if usable and (self._last is None or flight.seq > self._last.seq):
                self._last = flight
        flight.done.set()


# -- per-driver differences ----------------------------------------------------------------------------


class _Dialect:
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

    def add_user_data(
        self, kwargs: dict[str, Any], extra: dict[str, Any], user_data: str, driver: Any, provider: str
    ) -> None:
        """Put the rendered user data into create_node's ``kwargs``, refusing a second copy in ``extra``."""
        if not user_data:
            return
        keyword = self.user_data_kwarg
        if keyword is None:
            keyword = next(
                (k for k in self._GENERIC_USER_DATA_KWARGS if _accepts(driver.create_node, k, strict=True)), None
            )
        if keyword is None:
            raise ProviderError(
                f"{provider}: kube-node does not know how this driver's create_node takes user "
                "data, and the machine could not join the cluster without it",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="USER_DATA_UNSUPPORTED",
            )
        if keyword in extra:
            raise _conflict(provider, keyword, "userData")
        kwargs[keyword] = user_data


class _Ec2(_Dialect):
    """EC2: tags are exact and filterable server-side; images are looked up by id, or by name among trusted
    owners only."""

    reads_tags = True
    user_data_kwarg = "ex_userdata"
    image_hint = "give an AMI id, or the name of an AMI owned by this account or by Amazon"

    def list_kwargs(self, cluster: str) -> dict[str, Any]:
        return {"ex_filters": {f"tag:{TAG_CLUSTER}": cluster}}

    def read_tags(self, node: Any) -> dict[str, str]:
        return _string_dict(node.extra.get("tags"))

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        theirs = _string_dict(extra.pop("ex_metadata", None) or {})
        if "Name" in theirs:
            raise ProviderError(
                "ec2: extraCreateArgs ex_metadata sets the Name tag, which kube-node owns: it is the machine name",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_CREATE_ARGUMENT",
            )
        kwargs["ex_metadata"] = {**theirs, **spec.tags}
        # EC2's own idempotency key: a retried RunInstances with the same token returns the first instance.
        extra.setdefault("ex_clienttoken", spec.name)

    def find_image(self, driver: Any, wanted: str) -> Any | None:
        if wanted.startswith("ami-"):
            images = driver.list_images(ex_image_ids=[wanted])
        else:
            # By name only among our own and Amazon's images: anyone can publish an AMI with any name.
            images = driver.list_images(ex_owner="self", ex_filters={"name": wanted}) or driver.list_images(
                ex_owner="amazon", ex_filters={"name": wanted}
            )
        return _pick(images, wanted, provider="ec2", what="image")


class _Gce(_Dialect):
    """GCE: labels are sanitised, so the exact tags also go into instance metadata, next to user-data."""

    reads_tags = True
    image_hint = "not in this project nor in GCE's public image projects (by name or family prefix)"
    _LABEL = re.compile(r"[^a-z0-9_-]")
    _MAX = 63  #: characters in a label value

    def list_kwargs(self, cluster: str) -> dict[str, Any]:
        return {"ex_zone": "all"}

    def _label(self, value: str) -> str:
        return self._LABEL.sub("-", value.lower().replace(".", "_"))[: self._MAX]

    def _exact(self, node: Any) -> dict[str, str]:
        metadata = node.extra.get("metadata") or {}
        items = (metadata.get("items") or []) if isinstance(metadata, dict) else []
        return {str(i["key"]): str(i["value"]) for i in items if isinstance(i, dict) and i.get("key") in _OUR_TAGS}

    def read_tags(self, node: Any) -> dict[str, str]:
        tags = self._exact(node)
        labels = _string_dict(node.extra.get("labels"))
        for key in _OUR_TAGS:
            if key not in tags and key in labels:
                tags[key] = labels[key].replace("_", ".")
        return tags

    def owns(self, node: Any, cluster: str) -> bool:
        exact = self._exact(node).get(TAG_CLUSTER)
        if exact is not None:
            return exact == cluster
        return _string_dict(node.extra.get("labels")).get(TAG_CLUSTER) == self._label(cluster)

    def cut_tags(self, node: Any) -> frozenset[str]:
        exact = self._exact(node)
        labels = _string_dict(node.extra.get("labels"))
        return frozenset(key for key in _OUR_TAGS if key not in exact and len(labels.get(key, "")) >= self._MAX)

    def add_user_data(
        self, kwargs: dict[str, Any], extra: dict[str, Any], user_data: str, driver: Any, provider: str
    ) -> None:
        metadata = _gce_metadata(extra.pop("ex_metadata", None))
        if user_data:
            if "user-data" in metadata:
                raise _conflict(provider, "ex_metadata['user-data']", "userData")
            metadata["user-data"] = user_data
        kwargs["ex_metadata"] = metadata

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        kwargs["ex_metadata"] = {**kwargs.get("ex_metadata", {}), **spec.tags}
        theirs = _string_dict(extra.pop("ex_labels", None) or {})
        kwargs["ex_labels"] = {**theirs, **{key: self._label(value) for key, value in spec.tags.items()}}

    def find_image(self, driver: Any, wanted: str) -> Any | None:
        # Searches this project and the public image projects, by name, family prefix or URL.
        return driver.ex_get_image(wanted)


class _OpenStack(_Dialect):
    """OpenStack (nova): server metadata holds exact tags; the location is an availability zone name."""

    reads_tags = True
    location_kwarg = "ex_availability_zone"  # its create_node takes no location; zones are plain names
    user_data_kwarg = "ex_userdata"

    def read_tags(self, node: Any) -> dict[str, str]:
        return _string_dict(node.extra.get("metadata"))

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        kwargs["ex_metadata"] = {**_string_dict(extra.pop("ex_metadata", None) or {}), **spec.tags}


class _TagList(_Dialect):
    """Drivers whose tags are a flat list of strings: ours are ``key:value``."""

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
            if sep and key in _OUR_TAGS:
                found[key] = value
        return found

    def read_tags(self, node: Any) -> dict[str, str]:
        return {key: value.replace("_", ".") for key, value in self._raw(node).items()}

    def owns(self, node: Any, cluster: str) -> bool:
        raw = self._raw(node).get(TAG_CLUSTER)
        return raw is not None and self._tag(TAG_CLUSTER, cluster) == f"{TAG_CLUSTER}:{raw}"

    def cut_tags(self, node: Any) -> frozenset[str]:
        return frozenset(key for key, value in self._raw(node).items() if len(f"{key}:{value}") >= self._MAX)


class _DigitalOcean(_TagList):
    """DigitalOcean: create_node has no ex_tags; tags travel in ex_create_attr."""

    user_data_kwarg = "ex_user_data"

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        attrs = dict(extra.pop("ex_create_attr", None) or {})
        theirs = [str(t) for t in attrs.get("tags") or [] if str(t).partition(":")[0] not in _OUR_TAGS]
        kwargs["ex_create_attr"] = {**attrs, "tags": theirs + self._tags(spec)}


class _Linode(_TagList):
    """Linode (API v4): tags are at most 50 characters."""

    user_data_kwarg = "ex_userdata"
    _MAX = 50

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        theirs = [str(t) for t in extra.pop("ex_tags", None) or [] if str(t).partition(":")[0] not in _OUR_TAGS]
        kwargs["ex_tags"] = theirs + self._tags(spec)


class _EquinixMetal(_Dialect):
    """Equinix Metal: tags are sent but never shown back, so machines are recognised by name."""

    user_data_kwarg = "cloud_init"

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        # create_node passes unknown keywords into the request body; the nodes it returns omit tags.
        kwargs["tags"] = [f"{key}:{value}" for key, value in spec.tags.items()]


_DIALECTS: dict[str, type[_Dialect]] = {
    "ec2": _Ec2,
    "gce": _Gce,
    "openstack": _OpenStack,
    "digitalocean": _DigitalOcean,
    "linode": _Linode,
    "equinixmetal": _EquinixMetal,
}


def _dialect_for(provider: str) -> _Dialect:
    return _DIALECTS.get(provider, _Dialect)()


# -- error classification ------------------------------------------------------------------------------

_STOCKOUT = re.compile(
    r"InsufficientInstanceCapacity|InsufficientHostCapacity|InsufficientReservedInstanceCapacity|"
    r"InsufficientCapacity|ZONE_RESOURCE_POOL_EXHAUSTED|resource pool exhausted|"
    r"does not have enough resources available",
    re.IGNORECASE,
)
_QUOTA = re.compile(
    r"InstanceLimitExceeded|VcpuLimitExceeded|MaxSpotInstanceCountExceeded|QUOTA_EXCEEDED|quotaExceeded|"
    r"quota exceeded|exceeds? (?:the |your )?quota|droplet limit|exceed your [\w ]*limit",
    re.IGNORECASE,
)
_RATE_LIMITED = re.compile(
    r"RequestLimitExceeded|rateLimitExceeded|Throttling|TooManyRequests|Rate limit", re.IGNORECASE
)
_BAD_CREDENTIALS = re.compile(
    r"AuthFailure|InvalidClientTokenId|SignatureDoesNotMatch|UnrecognizedClientException|invalid_grant",
    re.IGNORECASE,
)
_IMAGE_NOT_FOUND = re.compile(r"InvalidAMIID\.(?:NotFound|Malformed)")
_NOT_FOUND = re.compile(r"\.NotFound\b|\bnot found\b|does not exist|notFound\b", re.IGNORECASE)


def classify_error(
    error: BaseException,
    *,
    provider: str = "libcloud",
    action: str = "call the provider",
    redact: Collection[str] = (),
) -> ProviderError:
    """Turn an exception from libcloud (or the provider behind it) into a :class:`ProviderError` whose
    class says how to treat it: quota and capacity refusals become :class:`QuotaExceededError` (code
    QUOTA_EXCEEDED, or STOCKOUT when the provider is out of machines rather than the account out of quota),
    bad credentials and permissions INVALID_CONFIGURATION, throttling, timeouts, connection failures and
    5xx TRANSIENT, anything else OTHER. The message names the provider and the action that failed; any
    string in ``redact`` (the credentials) is masked out of it."""
    if isinstance(error, ProviderError):
        return error
    from libcloud.common.exceptions import RateLimitReachedError  # noqa: PLC0415
    from libcloud.common.types import InvalidCredsError, LibcloudError  # noqa: PLC0415

    detail = _redact(_error_text(error), redact)
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "..."
    status = _http_status(error)
    prefix = f"{provider}: {action} failed"

    def message(summary: str, hint: str) -> str:
        return f"{prefix}: {summary} ({detail}); {hint}"

    if _STOCKOUT.search(detail):
        return QuotaExceededError(
            message("the provider is out of capacity for this size here", "try another size or location, or wait"),
            code="STOCKOUT",
        )
    if _QUOTA.search(detail) or (status == 422 and "you have reached" in detail.lower()):
        return QuotaExceededError(
            message("quota exceeded", "raise the account's quota with the provider, or remove machines"),
            code="QUOTA_EXCEEDED",
        )
    if isinstance(error, RateLimitReachedError) or status == 429 or _RATE_LIMITED.search(detail):
        return ProviderError(
            message("rate limited by the provider", "it will be retried with backoff"),
            error_class=ErrorClass.TRANSIENT,
            code="RATE_LIMITED",
        )
    if _is_credentials_error(error, InvalidCredsError) or status == 401 or _BAD_CREDENTIALS.search(detail):
        return ProviderError(
            message("the provider rejected the credentials", "check the NodeClass's credentials Secret"),
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code="INVALID_CREDENTIALS",
        )
    if _IMAGE_NOT_FOUND.search(detail):
        return ProviderError(
            message("the image does not exist", "check the NodeClass's image"),
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code="IMAGE_NOT_FOUND",
        )
    if status == 403:
        return ProviderError(
            message("permission denied", "grant the credentials the permission named above"),
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code="PERMISSION_DENIED",
        )
    if (
        isinstance(error, TimeoutError)
        or _is_requests_error(error, "Timeout")
        or (isinstance(error, LibcloudError) and "did not complete in" in detail)
    ):
        return ProviderError(
            message("timed out", "it will be retried"), error_class=ErrorClass.TRANSIENT, code="TIMEOUT"
        )
    if isinstance(error, OSError) and not isinstance(
        error, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
    ):
        return ProviderError(
            message("could not reach the provider", "it will be retried"),
            error_class=ErrorClass.TRANSIENT,
            code="CONNECTION_FAILED",
        )
    if status is not None and status >= 500:
        return ProviderError(
            message(f"the provider answered {status}", "it will be retried"),
            error_class=ErrorClass.TRANSIENT,
            code="PROVIDER_UNAVAILABLE",
        )
    return ProviderError(message(type(error).__name__, "see the provider's message"), code="PROVIDER_ERROR")


def _refused(error: ProviderError) -> bool:
    """Whether a failed create certainly made no machine: the provider refused it for quota, capacity or
    throttling. Anything else (a timeout, a dropped connection, a 5xx, an error kube-node cannot classify, even
    a bad configuration caught late) may have come after the cloud made the machine."""
    return error.error_class is ErrorClass.OUT_OF_RESOURCES or error.code == "RATE_LIMITED"


def _is_credentials_error(error: BaseException, invalid_creds: type[BaseException]) -> bool:
    if isinstance(error, invalid_creds):
        return True
    return type(error).__name__ == "GoogleAuthError"  # libcloud.common.google, not imported unless in use


def _is_requests_error(error: BaseException, name: str) -> bool:
    return any(cls.__name__ == name and cls.__module__.startswith("requests") for cls in type(error).__mro__)


def _error_text(error: BaseException) -> str:
    value: Any
    if hasattr(error, "message") and isinstance(error.message, str):  # BaseHTTPError
        value = error.message
    elif hasattr(error, "value"):  # LibcloudError; GCE puts dicts here
        value = error.value
    else:
        value = str(error) or type(error).__name__
    code = getattr(error, "code", None)
    text = value.get("message", str(value)) if isinstance(value, dict) else str(value)
    if isinstance(code, str) and code not in text:  # GCE's reason codes (QUOTA_EXCEEDED, quotaExceeded...)
        text = f"{code}: {text}"
    return " ".join(text.split())


def _http_status(error: BaseException) -> int | None:
    for attr in ("http_code", "code", "status"):
        value = getattr(error, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def _is_not_found(error: BaseException) -> bool:
    if isinstance(error, IndexError | KeyError):  # libcloud's get_image of an empty listing
        return True
    return (
        _http_status(error) == 404
        or type(error).__name__ == "ResourceNotFoundError"
        or bool(_NOT_FOUND.search(_error_text(error)))
    )


#: Request signatures a cloud may quote back in an error: replayable for a while, so never shown.
_SIGNATURE = re.compile(r"(Signature=|X-Amz-Signature=|X-Amz-Credential=)[^&\s<\"']+", re.IGNORECASE)


def _redact(text: str, secrets: Collection[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SIGNATURE.sub(r"\1***", text)


def _not_found(provider: str, what: str, wanted: str, hint: str) -> ProviderError:
    return ProviderError(
        f"{provider}: {what} {wanted!r} not found: {hint}",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code=f"{what.upper()}_NOT_FOUND",
    )


def _conflict(provider: str, argument: str, field: str) -> ProviderError:
    return ProviderError(
        f"{provider}: extraCreateArgs sets {argument} and the NodeClass sets {field}; set only one",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="CONFLICTING_CREATE_ARGUMENT",
    )


# -- small helpers at the libcloud boundary ------------------------------------------------------------


def _node_state(node: Any, provider: str) -> MachineState:
    state = str(node.state)
    if state == "unknown" and provider == "ec2":
        raw = _EC2_RAW_STATES.get(str(node.extra.get("status", "")))
        if raw is not None:
            return raw
    return _STATES.get(state, MachineState.PENDING)


def _created_at(node: Any) -> float | None:
    created = getattr(node, "created_at", None)
    if isinstance(created, datetime):
        return created.timestamp()
    for key in ("creationTimestamp", "created_at", "created"):  # drivers that leave created_at unset (GCE)
        value = (node.extra or {}).get(key)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return None


def _failure_reason(node: Any) -> str:
    extra = node.extra or {}
    fault = extra.get("fault")  # OpenStack
    if isinstance(fault, dict) and fault.get("message"):
        return str(fault["message"])
    for key in ("statusMessage", "status", "state"):  # GCE, EC2, others
        if extra.get(key):
            return f"the provider reports the machine as {extra[key]}"
    return f"the provider reports the machine as {node.state}"


def _pick(items: list[Any], wanted: str, *, provider: str, what: str) -> Any | None:
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


def _described(item: Any) -> str:
    """A size, image or location as people know it: its name, and its id when that differs."""
    name, id_ = str(getattr(item, "name", "") or ""), str(getattr(item, "id", "") or "")
    if not name or name == id_:
        return id_ or name
    return f"{name} ({id_})" if id_ else name


def _parameters(function: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return {}


def _accepts(function: Any, name: str, *, strict: bool = False) -> bool:
    """Whether ``function`` takes keyword ``name``; with ``strict``, a ``**kwargs`` catch-all does not count."""
    parameters = _parameters(function)
    if name in parameters:
        return True
    return not strict and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _overrides(driver: Any, method: str) -> bool:
    from libcloud.compute.base import NodeDriver  # noqa: PLC0415

    return getattr(type(driver), method, None) is not getattr(NodeDriver, method, None)


def _connection_timeout(connection_cls: Any, timeout: float) -> float:
    """A polling connection (GCE's) uses ``timeout`` also as its budget for waiting on operations; never
    shrink that below libcloud's own default."""
    from libcloud.common.base import PollingConnection  # noqa: PLC0415

    if isinstance(connection_cls, type) and issubclass(connection_cls, PollingConnection):
        return max(timeout, float(connection_cls.timeout or 0))
    return timeout


def _apply_timeout(driver: Any, timeout: float) -> None:
    """Give every connection of the driver that has no timeout (libcloud's default) ours, so that no call can
    hang forever; the connections are opened lazily, so this takes effect on the first request."""
    from libcloud.common.base import Connection  # noqa: PLC0415

    for value in list(vars(driver).values()):
        if isinstance(value, Connection) and value.timeout is None:
            value.timeout = _connection_timeout(type(value), timeout)


def _string_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _gce_metadata(value: Any) -> dict[str, str]:
    """The user's ex_metadata, in any of the forms libcloud's GCE driver accepts, as a flat dict."""
    if not value:
        return {}
    if isinstance(value, dict) and set(value) == {"items"}:
        value = value["items"]
    if isinstance(value, dict) and set(value) == {"key", "value"}:
        value = [value]
    if isinstance(value, list):
        flat: dict[str, str] = {}
        for item in value:
            if isinstance(item, dict) and set(item) == {"key", "value"}:
                flat[str(item["key"])] = str(item["value"])
            elif isinstance(item, dict) and len(item) == 1:
                flat.update(_string_dict(item))
            else:
                raise ProviderError(
                    "gce: extraCreateArgs ex_metadata has an item that is neither {key, value} nor {name: value}",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREATE_ARGUMENT",
                )
        return flat
    if isinstance(value, dict):
        return _string_dict(value)
    raise ProviderError(
        "gce: extraCreateArgs ex_metadata must be an object or a list",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="INVALID_CREATE_ARGUMENT",
    )
