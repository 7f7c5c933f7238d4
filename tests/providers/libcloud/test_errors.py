"""Error classification: what libcloud raises, as a ProviderError whose class and code say how to treat it, and
never a credential in a message or a log record."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError, ServiceUnavailableError

from nodeset_controller.providers import ErrorClass, ProviderError
from nodeset_controller.providers.libcloud import classify_error

from ._clouds import MACHINE, SPEC, Harness


@pytest.mark.parametrize(
    ("make", "error_class", "code"),
    [
        (lambda: RateLimitReachedError(headers={"retry-after": "3"}), ErrorClass.TRANSIENT, "RATE_LIMITED"),
        (
            lambda: BaseHTTPError(503, "RequestLimitExceeded: Request limit exceeded."),
            ErrorClass.TRANSIENT,
            "RATE_LIMITED",
        ),
        (ServiceUnavailableError, ErrorClass.TRANSIENT, "PROVIDER_UNAVAILABLE"),
        (lambda: BaseHTTPError(502, "Bad Gateway"), ErrorClass.TRANSIENT, "PROVIDER_UNAVAILABLE"),
        (lambda: TimeoutError("timed out"), ErrorClass.TRANSIENT, "TIMEOUT"),
        (lambda: LibcloudError("Job did not complete in 180 seconds"), ErrorClass.TRANSIENT, "TIMEOUT"),
        (lambda: ConnectionRefusedError(111, "Connection refused"), ErrorClass.TRANSIENT, "CONNECTION_FAILED"),
        (lambda: socket.gaierror(-2, "Name or service not known"), ErrorClass.TRANSIENT, "CONNECTION_FAILED"),
        (lambda: InvalidCredsError("AuthFailure: bad key"), ErrorClass.INVALID_CONFIGURATION, "INVALID_CREDENTIALS"),
        (lambda: BaseHTTPError(401, "Unauthorized"), ErrorClass.INVALID_CONFIGURATION, "INVALID_CREDENTIALS"),
        (
            lambda: BaseHTTPError(400, "VcpuLimitExceeded: You have requested more vCPU capacity"),
            ErrorClass.OUT_OF_RESOURCES,
            "QUOTA_EXCEEDED",
        ),
        (
            lambda: BaseHTTPError(422, "You have reached the maximum number of droplets (code: 422)"),
            ErrorClass.OUT_OF_RESOURCES,
            "QUOTA_EXCEEDED",
        ),
        (
            lambda: BaseHTTPError(400, "InvalidAMIID.NotFound: The image id '[ami-1]' does not exist"),
            ErrorClass.INVALID_CONFIGURATION,
            "IMAGE_NOT_FOUND",
        ),
        (
            lambda: BaseHTTPError(403, "You do not have access for the attempted action."),
            ErrorClass.INVALID_CONFIGURATION,
            "PERMISSION_DENIED",
        ),
        (lambda: ValueError("ex_security_group_ids needs ex_subnet"), ErrorClass.OTHER, "PROVIDER_ERROR"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_classify_error(make: Callable[[], BaseException], error_class: ErrorClass, code: str) -> None:
    error = classify_error(make(), provider="ec2", action="create machine m-1")

    assert (error.error_class, error.code) == (error_class, code)
    assert str(error).startswith("ec2: create machine m-1 failed: ")


def test_classify_error_masks_the_credentials() -> None:
    error = classify_error(ValueError("token s3cr3t-token rejected"), provider="do", redact=["s3cr3t-token"])

    assert "s3cr3t-token" not in str(error)


def test_credentials_appear_in_no_log_record_and_no_error(ec2: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="nodeset_controller.providers.libcloud")
    ec2.cloud.create_error = (
        400,
        "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>secret-ec2-key is not valid here"
        "</Message></Error></Errors><RequestID>r-1</RequestID></Response>",
    )
    provider = ec2.provider
    with pytest.raises(ProviderError) as raised:
        provider.create(SPEC)
    ec2.cloud.create_error = None
    provider.create(SPEC)

    assert "secret-ec2-key" not in str(raised.value)
    assert "***" in str(raised.value)
    assert "secret-ec2-key" not in repr(provider)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"created machine {MACHINE}" in logged
    assert "secret-ec2-key" not in logged and "access_id" not in logged
