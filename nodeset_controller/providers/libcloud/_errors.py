"""Error classification: an exception from libcloud (or the cloud behind it) as a :class:`ProviderError` whose
class and code say how to treat it, with the credentials masked out of its message."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from urllib.parse import quote, quote_plus

from .._machine import ErrorClass, ProviderError, QuotaExceededError

_MAX_DETAIL = 600

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
#: GCE's metadata server would not give a token (libcloud's internal authentication): not on GCE or GKE, or no
#: service account on the instance or through workload identity
_NO_METADATA_TOKEN = re.compile(r"Internal GCE Authorization failed|Service Accounts are not enabled", re.IGNORECASE)
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

    detail = mask(_error_text(error), redact)
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "..."
    status = _http_status(error)
    prefix = f"{provider}: {action} failed"

    def message(summary: str, hint: str) -> str:
        return f"{prefix}: {summary} ({detail}); {hint}"

    if _NO_METADATA_TOKEN.search(detail):
        return ProviderError(
            message(
                "the GCE metadata server gave no access token",
                "without a credentials Secret, kube-node must run on GCE or GKE with a service account (on GKE, "
                "workload identity: the ServiceAccount annotated iam.gke.io/gcp-service-account)",
            ),
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code="METADATA_TOKEN_UNAVAILABLE",
        )
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


def refused(error: ProviderError) -> bool:
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


def is_not_found(error: BaseException) -> bool:
    if isinstance(error, IndexError | KeyError):  # libcloud's get_image of an empty listing
        return True
    return (
        _http_status(error) == 404
        or type(error).__name__ == "ResourceNotFoundError"
        or bool(_NOT_FOUND.search(_error_text(error)))
    )


#: Request signatures a cloud may quote back in an error: replayable for a while, so never shown.
_SIGNATURE = re.compile(
    r"(Signature=|X-Amz-Signature=|X-Amz-Credential=|X-Amz-Security-Token=)[^&\s<\"']+", re.IGNORECASE
)


def mask(text: str, secrets: Collection[str]) -> str:
    """``text`` with every string of ``secrets`` (of 4 characters or more) and any request signature masked."""
    for secret in secrets:
        if len(secret) >= 4:
            # as given, and as a URL quotes it (a session token has "/", "+" and "=")
            for form in {secret, quote(secret, safe=""), quote_plus(secret, safe="")}:
                text = text.replace(form, "***")
    return _SIGNATURE.sub(r"\1***", text)


def not_found(provider: str, what: str, wanted: str, hint: str) -> ProviderError:
    return ProviderError(
        f"{provider}: {what} {wanted!r} not found: {hint}",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code=f"{what.upper().replace(' ', '_')}_NOT_FOUND",
    )


def conflict(provider: str, argument: str, field: str) -> ProviderError:
    return ProviderError(
        f"{provider}: extraCreateArgs sets {argument} and the NodeClass sets {field}; set only one",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="CONFLICTING_CREATE_ARGUMENT",
    )
