"""One account listing per provider per poll interval, shared by every get, list and create.

A libcloud ``get`` is a full ``list_nodes`` of the account, and the NodeController polls each booting Node
every second: without sharing, 200 booting Nodes are 200 list calls a second. What must still hold: a
machine just created is never reported missing (that would mark its Node Failed), and a destroyed one is
not shown alive from an old listing.
"""

from __future__ import annotations

import threading
import time

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.compute.base import Node

from nodeset_controller.providers import (
    LibcloudProvider,
    MachineSpec,
    MachineState,
    ProviderError,
    QuotaExceededError,
    machine_name,
)
from nodeset_controller.providers.libcloud import _adapter

from .._fakes import TaggingDriver, nodeclass

CLUSTER = "prod"
UID = "7e1d5c3a-0000-4000-8000-000000000000"


def _spec(node: str) -> MachineSpec:
    return MachineSpec(
        name=machine_name(node, UID),
        node_name=node,
        node_uid=UID,
        nodeclass="small",
        cluster=CLUSTER,
        provider_id=f"kube-node://small/{node}",
    )


def _provider(driver: TaggingDriver, **kwargs: float) -> LibcloudProvider:
    return LibcloudProvider(nodeclass(driver.provider), {}, CLUSTER, driver_factory=lambda: driver, **kwargs)


def test_successive_gets_and_lists_within_the_interval_share_one_listing() -> None:
    driver = TaggingDriver("linode")
    provider = _provider(driver)
    provider.create(_spec("web-1"))

    for _ in range(200):
        assert provider.get(machine_name("web-1", UID)) is not None
        assert provider.get(machine_name("web-2", UID)) is None
    assert [m.name for m in provider.list()] == [machine_name("web-1", UID)]

    assert driver.list_calls == 1  # the one create's check made, and nothing since


def test_concurrent_gets_from_many_threads_share_one_listing() -> None:
    driver = TaggingDriver("digitalocean")
    _provider(driver).create(_spec("web-1"))  # by another provider: this one has listed nothing yet
    driver.list_calls = 0
    provider = _provider(driver)
    driver.before_list = lambda: time.sleep(0.3)  # a slow cloud: every thread asks while the listing runs
    start = threading.Barrier(50)
    found: list[str | None] = []

    def poll() -> None:
        start.wait()
        for _ in range(5):
            machine = provider.get(machine_name("web-1", UID))
            found.append(None if machine is None else machine.id)

    threads = [threading.Thread(target=poll) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert found == [f"id-{machine_name('web-1', UID)}"] * 250
    assert driver.list_calls == 1


def test_a_listing_older_than_the_interval_is_not_used() -> None:
    driver = TaggingDriver("ec2")
    provider = _provider(driver, listing_max_age=0.2)

    provider.get("web-1-7e1d5c3a")
    provider.list()
    assert driver.list_calls == 1
    time.sleep(0.3)
    provider.get("web-1-7e1d5c3a")
    assert driver.list_calls == 2


def test_a_failed_listing_is_not_kept() -> None:
    driver = TaggingDriver("ec2")
    provider = _provider(driver)
    failures = [TimeoutError("timed out")]

    def flaky() -> None:
        if failures:
            raise failures.pop()

    driver.before_list = flaky
    with pytest.raises(ProviderError) as raised:
        provider.get("web-1-7e1d5c3a")
    assert raised.value.code == "TIMEOUT"

    assert provider.get("web-1-7e1d5c3a") is None  # listed again, not the error again
    assert driver.list_calls == 1  # the failed call raised before it was counted


def test_a_machine_created_within_the_interval_is_got_and_listed() -> None:
    driver = TaggingDriver("linode")
    provider = _provider(driver)
    name = machine_name("web-1", UID)
    assert provider.get(name) is None  # listed (and kept) before the machine exists

    created = provider.create(_spec("web-1"))
    got = provider.get(name)

    assert got is not None and got.id == created.id
    assert [m.name for m in provider.list()] == [name]


def test_a_machine_just_created_that_listings_do_not_show_yet_is_not_reported_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = TaggingDriver("openstack")
    provider = _provider(driver, listing_max_age=0.0)  # every call lists: only the memory of the create helps
    name = machine_name("web-1", UID)
    driver.hidden.add(name)  # the cloud's listings lag behind its creates

    created = provider.create(_spec("web-1"))
    got = provider.get(name)

    assert got is not None and (got.id, got.state) == (created.id, MachineState.PENDING)
    assert [m.name for m in provider.list()] == [name]
    driver.hidden.clear()
    assert provider.get(name) is not None  # now listed

    # A machine that listings never show is believed gone once the grace has passed.
    monkeypatch.setattr(_adapter, "_UNLISTED_GRACE", 0.0)
    never_listed = TaggingDriver("openstack")
    never_listed.hidden.add(name)
    provider = _provider(never_listed, listing_max_age=0.0)
    provider.create(_spec("web-1"))
    assert provider.get(name) is None


def test_destroy_is_seen_by_the_next_get_within_the_interval() -> None:
    driver = TaggingDriver("digitalocean")
    provider = _provider(driver)
    name = machine_name("web-1", UID)
    provider.create(_spec("web-1"))
    assert provider.get(name) is not None

    provider.destroy(name)

    assert driver.destroyed == [name]
    assert provider.get(name) is None
    assert provider.list() == []


def test_destroy_finds_a_machine_just_created_that_listings_do_not_show_yet() -> None:
    driver = TaggingDriver("linode")
    provider = _provider(driver)
    name = machine_name("web-1", UID)
    driver.hidden.add(name)
    provider.create(_spec("web-1"))

    provider.destroy(name)  # the Node was deleted right away

    assert driver.destroyed == [name]
    assert provider.get(name) is None


# -- a create whose outcome is unknown -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TimeoutError("The read operation timed out"), "TIMEOUT"),
        (ConnectionResetError(104, "Connection reset by peer"), "CONNECTION_FAILED"),
        (BaseHTTPError(502, "Bad Gateway"), "PROVIDER_UNAVAILABLE"),
        (ValueError("unexpected answer"), "PROVIDER_ERROR"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
@pytest.mark.parametrize("provider_name", ["digitalocean", "linode", "openstack", "gce"])
def test_a_create_that_failed_after_the_machine_was_made_is_found_on_retry_not_made_twice(
    provider_name: str, error: Exception, code: str
) -> None:
    driver = TaggingDriver(provider_name)
    provider = _provider(driver)
    spec = _spec("web-1")

    def made_then_failed(node: Node) -> Node:
        raise error  # the cloud made the machine; its answer never arrived

    driver.on_create = made_then_failed
    with pytest.raises(ProviderError) as raised:
        provider.create(spec)
    assert raised.value.code == code
    driver.on_create = lambda node: node

    machine = provider.create(spec)  # the controller's retry, well within the listing's interval

    assert len(driver.created) == 1
    assert machine.id == f"id-{spec.name}" and machine.name == spec.name
    assert driver.list_calls == 2  # the retry listed afresh
    provider.create(spec)
    assert driver.list_calls == 2  # and only that once: the outcome is known again


def test_a_create_the_provider_refused_is_retried_from_the_shared_listing() -> None:
    driver = TaggingDriver("linode")
    provider = _provider(driver)

    def refused(node: Node) -> Node:
        driver.machines.remove(node)  # nothing was made
        raise BaseHTTPError(400, "InstanceLimitExceeded: you have requested more instances than your limit")

    driver.on_create = refused
    with pytest.raises(QuotaExceededError):
        provider.create(_spec("web-1"))
    driver.on_create = lambda node: node

    provider.create(_spec("web-1"))

    assert len(driver.created) == 2 and len(driver.machines) == 1
    assert driver.list_calls == 1  # a refusal leaves nothing to look for


def test_a_retry_whose_fresh_listing_failed_leaves_the_next_retry_listing_afresh() -> None:
    driver = TaggingDriver("linode")
    provider = _provider(driver)
    spec = _spec("web-1")

    def made_then_timed_out(node: Node) -> Node:
        raise TimeoutError("The read operation timed out")

    driver.on_create = made_then_timed_out
    with pytest.raises(ProviderError):
        provider.create(spec)
    driver.on_create = lambda node: node
    failures = [ConnectionResetError(104, "Connection reset by peer")]

    def flaky() -> None:
        if failures:
            raise failures.pop()

    driver.before_list = flaky
    with pytest.raises(ProviderError):
        provider.create(spec)  # the fresh listing failed: nothing learnt
    machine = provider.create(spec)

    assert len(driver.created) == 1 and machine.name == spec.name
