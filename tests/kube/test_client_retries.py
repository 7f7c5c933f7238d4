"""The client's retry policy: what is sent again (a 429, a 5xx with Retry-After, a connection never made; any
transient failure of a read) and what never is (a write whose outcome is unknown), within the request's timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s_client

from nodeset_controller.kube import NODES, ApiError, KubeClient


class ScriptedPool:
    """Stands in for the urllib3 pool: answers each request with the next scripted response or error."""

    def __init__(self, script: list[Any]) -> None:
        self._script: Iterator[Any] = iter(script)
        self.sent: list[tuple[str, float]] = []

    def request(self, method: str, url: str, **_: Any) -> urllib3.HTTPResponse:
        self.sent.append((method, time.monotonic()))
        step = next(self._script)
        if isinstance(step, BaseException):
            raise step
        status, headers = step
        return urllib3.HTTPResponse(body=b'{"kind": "Status"}', status=status, headers=headers, preload_content=True)


def scripted(*script: Any) -> tuple[KubeClient, ScriptedPool]:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    client = KubeClient(configuration)
    pool = ScriptedPool(list(script))
    client._pool = pool  # type: ignore[assignment]
    return client, pool


BROKEN = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
REFUSED = urllib3.exceptions.NewConnectionError(None, "Connection refused")
OK = (200, {})


def test_a_429_is_sent_again_after_retry_after_even_a_create() -> None:
    client, pool = scripted((429, {"Retry-After": "1"}), OK)
    client.create(NODES, {"metadata": {"name": "n"}})
    (_, first), (_, second) = pool.sent
    assert second - first >= 1.0  # never sooner than the server asked


def test_a_connection_never_made_is_retried_for_any_method() -> None:
    client, pool = scripted(REFUSED, REFUSED, OK)
    client.create(NODES, {"metadata": {"name": "n"}})
    assert [m for m, _ in pool.sent] == ["POST"] * 3


@pytest.mark.parametrize("failure", [BROKEN, (500, {}), urllib3.exceptions.ReadTimeoutError(None, "/", "timed out")])
def test_a_write_whose_outcome_is_unknown_is_never_sent_again_but_a_read_is(failure: Any) -> None:
    client, pool = scripted(failure, OK)
    with pytest.raises((urllib3.exceptions.HTTPError, ApiError)):
        client.patch(NODES, "n", {"metadata": {"labels": {"a": "b"}}})
    assert len(pool.sent) == 1
    client, pool = scripted(failure, OK)
    client.get(NODES, "n")
    assert len(pool.sent) == 2


def test_a_5xx_with_retry_after_says_nothing_was_done_so_a_write_is_sent_again() -> None:
    client, pool = scripted((503, {"Retry-After": "0"}), OK)
    client.delete(NODES, "n")
    assert len(pool.sent) == 2


def test_retries_stop_at_the_requests_timeout() -> None:
    client, pool = scripted(*[(429, {"Retry-After": "1"})] * 10)
    client.request_timeout = 2.5
    started = time.monotonic()
    with pytest.raises(ApiError) as raised:
        client.get(NODES, "n")
    assert raised.value.status == 429
    assert time.monotonic() - started < 2.5
    assert 2 <= len(pool.sent) <= 3
