"""The adapter: :class:`LibcloudProvider`, a :class:`MachineProvider` over any libcloud compute driver.

It builds the drivers (one per thread), reads one listing of the account shared by every get, list and
create (:class:`_SharedListing`), decides which listed machines are ours, turns libcloud's nodes into
:class:`Machine` records, and builds create_node's arguments from the NodeClass. What differs per driver it
asks that driver's :class:`Dialect`, from the table ``_DIALECTS`` below.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...api import NodeClass
from .._machine import (
    TAG_CLUSTER,
    TAG_NODE,
    TAG_NODECLASS,
    ErrorClass,
    Machine,
    MachineSpec,
    MachineState,
    ProviderError,
)
from ._dialect import Dialect, Keyless, accepts, parameters_of, pick
from ._digitalocean import DigitalOceanDialect
from ._ec2 import Ec2Dialect
from ._equinixmetal import EquinixMetalDialect
from ._errors import classify_error, conflict, is_not_found, mask, not_found, refused
from ._gce import GceDialect
from ._linode import LinodeDialect
from ._openstack import OpenStackDialect

_log = logging.getLogger(__name__)

#: Builds one libcloud driver; called once per thread that uses the provider.
DriverFactory = Callable[[], Any]
_Nodes = list[Any]  # libcloud Nodes; an alias, since LibcloudProvider.list shadows the builtin in its body

_DEFAULT_TIMEOUT = 60.0
#: How long one listing of the account's machines answers every get, list and create of a provider (seconds):
#: about two of the NodeController's boot polls (1 s), so that however many Nodes boot, a NodeClass costs
#: one list call per interval instead of one per booting Node per second.
LISTING_MAX_AGE = 2.0
#: How long a machine this provider created is taken to exist while listings do not show it yet (clouds'
#: listings lag behind their creates), before it is believed gone (seconds).
_UNLISTED_GRACE = 300.0

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
        #: no Secret (and libcloud's own driver): the driver is built from the process's own identity in the cloud
        #: (Dialect.keyless)
        self._keyless = driver_factory is None and nodeclass.spec.credentials_secret_ref is None and not credentials
        #: the keyless credentials drivers were built from, to mask out of errors (the last few generations)
        self._keyless_secrets: list[str] = []
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
            if not refused(error):
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
            if node.name != name or self._dialect.state(node) is MachineState.TERMINATED:
                continue
            if machine_id is not None and str(node.id) != machine_id:
                continue
            try:
                done = driver.destroy_node(node)
            except Exception as error:
                if is_not_found(error):
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
        keyword and the resources they name are looked up (see :meth:`Dialect.resolve_args`), and the location,
        size and image are looked up afresh (list_locations, list_sizes, the image
        lookup: authenticated calls on most drivers, so rejected credentials show here too), then remembered for
        this thread's creates. Returns what they resolved to."""
        size, image, where = self._size_image_location()
        driver = self._driver()
        resolved: dict[tuple[str, str], Any] = self._local.resolved
        extra = self._resolve_extra(driver)
        resolved[("extra", "")] = extra
        # Where the user data would go, and that extraCreateArgs does not set it too (on copies: nothing is kept).
        self._dialect.add_user_data({}, dict(extra), self._nodeclass.spec.user_data or "", driver, self._provider)
        parts = []
        location = None
        if where:
            if self._dialect.location_kwarg is not None:
                if self._dialect.location_kwarg in extra:
                    raise conflict(self._provider, self._dialect.location_kwarg, "location")
                parts.append(f"location {where}")
            else:
                location = self._find_location(driver, where)
                resolved[("location", where)] = location
                parts.append(f"location {_described(location)}")
        found_size = self._find_size(driver, size, location)
        resolved[("size", size)] = found_size
        found_image = self._find_image(driver, image)
        resolved[("image", image)] = found_image
        keyless: Keyless | None = getattr(self._local, "keyless", None)
        if keyless is not None:
            parts.append(f"credentials from {keyless.source}")
        return ", ".join([f"size {_described(found_size)}", f"image {_described(found_image)}", *parts])

    # -- drivers ---------------------------------------------------------------------------------------

    def _driver(self) -> Any:
        """This thread's driver; built again when the keyless credentials it was built from were refreshed."""
        driver = getattr(self._local, "driver", None)
        keyless = self._current_keyless()
        if driver is None or keyless != getattr(self._local, "keyless", None):
            self._local.keyless = keyless  # what the factory builds from
            if keyless is not None:
                with self._lock:
                    self._keyless_secrets = [*keyless.secrets, *self._keyless_secrets][:12]
            try:
                driver = self._factory()
            except ProviderError:
                self._local.driver = self._local.keyless = None
                raise
            except Exception as error:
                self._local.driver = self._local.keyless = None
                raise self._error(error, "set up the libcloud driver") from error
            _apply_timeout(driver, self._timeout)
            self._dialect.prepare_driver(driver)
            self._local.driver = driver
            self._local.resolved = {}
        return driver

    def _current_keyless(self) -> Keyless | None:
        """With no credentials Secret, the process's own credentials as the dialect gives them now."""
        if not self._keyless:
            return None
        try:
            return self._dialect.keyless(self._options(), self._timeout)
        except ProviderError as error:
            raise ProviderError(
                mask(str(error), self._secrets()), error_class=error.error_class, code=error.code
            ) from None

    def _options(self) -> dict[str, Any]:
        # The CRD keeps driverOptions to strings and integers; "true" and "false" are the driver's booleans
        # (secure: "false" for a plain-HTTP private endpoint, for example).
        return {
            key: {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
            for key, value in self._nodeclass.spec.driver_options.items()
        }

    def _secrets(self) -> tuple[str, ...]:
        with self._lock:
            return (*self._credentials.values(), *self._keyless_secrets)

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
        keyless: Keyless | None = getattr(self._local, "keyless", None)
        creds: dict[str, Any] = dict(self._credentials)
        if keyless is not None:
            creds = {**keyless.kwargs, **({"key": keyless.args[0]} if keyless.args else {})}
            if len(keyless.args) > 1:
                creds["secret"] = keyless.args[1]
        args = [creds.pop("key")] if "key" in creds else []
        if "secret" in creds:
            if not args:
                raise ProviderError(
                    f"{self._provider}: the credentials Secret has 'secret' but no 'key'",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREDENTIALS",
                )
            args.append(creds.pop("secret"))
        options = self._options()
        clash = sorted(name for name in set(creds) & set(options) if keyless is None or creds[name] != options[name])
        if clash:
            where = "the credentials Secret" if keyless is None else f"the credentials from {keyless.source}"
            raise ProviderError(
                f"{self._provider}: {', '.join(clash)} is set both in {where} and in driverOptions; keep it in one "
                "place",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_DRIVER_OPTIONS",
            )
        kwargs: dict[str, Any] = {**creds, **options}
        for name, value in self._dialect.driver_defaults(args[0] if args else None, kwargs).items():
            kwargs.setdefault(name, value)
        if "timeout" not in kwargs and accepts(driver_cls.__init__, "timeout"):
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
                f"Secret's keys ({', '.join(sorted(self._credentials)) or 'none, no Secret'})",
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
        return classify_error(error, provider=self._provider, action=action, redact=self._secrets())

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
        live = [node for node in matches if self._dialect.state(node) is not MachineState.TERMINATED]
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
        state = self._dialect.state(node)
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

    def _size_image_location(self) -> tuple[str, str, str | None]:
        """The NodeClass's size, image and location; a NodeClass without size or image is refused."""
        nc = self._nodeclass.spec
        if not nc.size or not nc.image:
            raise ProviderError(
                f"{self._provider}: NodeClass {self._nodeclass.metadata.name} must set size and image",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_NODECLASS",
            )
        return nc.size, nc.image, nc.location

    def _create_kwargs(self, driver: Any, spec: MachineSpec) -> dict[str, Any]:
        size, image, where = self._size_image_location()
        extra = dict(self._resolved("extra", "", lambda: self._resolve_extra(driver)))
        kwargs: dict[str, Any] = {"name": spec.name}
        location = None
        if where:
            if self._dialect.location_kwarg is not None:
                if self._dialect.location_kwarg in extra:
                    raise conflict(self._provider, self._dialect.location_kwarg, "location")
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

    def _resolve_extra(self, driver: Any) -> dict[str, Any]:
        """The NodeClass's extraCreateArgs as the driver takes them (:meth:`Dialect.resolve_args`)."""
        extra = self._extra_args(driver)
        try:
            return self._dialect.resolve_args(driver, extra, self._provider)
        except ProviderError:
            raise
        except Exception as error:
            raise self._error(error, "look up what extraCreateArgs names") from error

    def _extra_args(self, driver: Any) -> dict[str, Any]:
        """The NodeClass's extraCreateArgs, checked against the driver's create_node signature so that a typo
        fails here, by name, instead of as a TypeError from deep inside libcloud. Their names start with
        ``ex_``, or are among the few others the driver documents (the dialect's ``create_args``)."""
        extra: dict[str, Any] = {}
        allowed = self._dialect.create_args
        for arg in self._nodeclass.spec.extra_create_args:
            if not arg.name.startswith("ex_") and arg.name not in allowed:
                others = f" or be one of {', '.join(sorted(allowed))}" if allowed else ""
                raise ProviderError(
                    f"{self._provider}: extraCreateArgs name {arg.name!r} must start with 'ex_'{others}",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREATE_ARGUMENT",
                )
            if not accepts(driver.create_node, arg.name):
                known = [p for p in parameters_of(driver.create_node) if p.startswith("ex_") or p in allowed]
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
        found = pick(locations, wanted, provider=self._provider, what="location")
        if found is None:
            names = ", ".join(sorted(str(loc.name) for loc in locations)[:30])
            raise not_found(self._provider, "location", wanted, f"known locations: {names}")
        return found

    def _find_size(self, driver: Any, wanted: str, location: Any) -> Any:
        if location is not None and accepts(driver.list_sizes, "location"):
            sizes = self._call("list sizes", lambda: driver.list_sizes(location=location))
        else:
            sizes = self._call("list sizes", driver.list_sizes)
        found = pick(sizes, wanted, provider=self._provider, what="size")
        if found is None:
            found = self._call(f"look up size {wanted}", lambda: self._dialect.size_as_is(driver, wanted))
        if found is None:
            where = f" in location {location.name}" if location is not None else ""
            raise not_found(self._provider, "size", wanted, f"no size has that id or name{where}")
        return found

    def _find_image(self, driver: Any, wanted: str) -> Any:
        if self._dialect.image_hint is not None:
            try:
                image = self._dialect.find_image(driver, wanted)
            except Exception as error:
                if not is_not_found(error):
                    raise self._error(error, f"look up image {wanted}") from error
                image = None
            if image is None:
                raise not_found(self._provider, "image", wanted, self._dialect.image_hint)
            return image
        images = self._call("list images", driver.list_images)
        found = pick(images, wanted, provider=self._provider, what="image")
        if found is None and _overrides(driver, "get_image"):
            try:
                found = driver.get_image(wanted)
            except Exception as error:
                if not is_not_found(error):
                    raise self._error(error, f"look up image {wanted}") from error
                found = None
        if found is None:
            raise not_found(self._provider, "image", wanted, "no image has that id or name")
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


# -- which dialect speaks for which driver ---------------------------------------------------------------


_DIALECTS: dict[str, type[Dialect]] = {
    "ec2": Ec2Dialect,
    "gce": GceDialect,
    "openstack": OpenStackDialect,
    "digitalocean": DigitalOceanDialect,
    "linode": LinodeDialect,
    "equinixmetal": EquinixMetalDialect,
}


def _dialect_for(provider: str) -> Dialect:
    return _DIALECTS.get(provider, Dialect)()


# -- small helpers at the libcloud boundary ------------------------------------------------------------


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


def _described(item: Any) -> str:
    """A size, image or location as people know it: its name, and its id when that differs."""
    name, id_ = str(getattr(item, "name", "") or ""), str(getattr(item, "id", "") or "")
    if not name or name == id_:
        return id_ or name
    return f"{name} ({id_})" if id_ else name


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
