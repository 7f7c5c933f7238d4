"""AWS credentials without static keys: the pod's own identity, as EKS gives it.

- **IRSA** (IAM roles for service accounts): the pod has ``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_TOKEN_FILE`` (a
  projected ServiceAccount token the kubelet rotates). The token is exchanged with STS
  ``AssumeRoleWithWebIdentity`` (an unsigned request) for session credentials. The endpoint is
  ``AWS_ENDPOINT_URL_STS`` if set, else the global ``sts.amazonaws.com`` if ``AWS_STS_REGIONAL_ENDPOINTS`` is
  ``legacy``, else the regional ``sts.<region>.amazonaws.com`` of ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the
  NodeClass's region (the global endpoint if none is known).
- **EKS Pod Identity**: the pod has ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (or ``AWS_CONTAINER_AUTHORIZATION_TOKEN``); a GET of the URI with
  the token as ``Authorization`` answers the credentials as JSON.

Either way the credentials are kept, shared by every NodeClass and thread of the process, and fetched again
(reading the token file again) once 80% of their lifetime has passed. Nothing here logs a credential or a
token, and no error message quotes one.
"""

from __future__ import annotations

import json
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .._machine import ErrorClass, ProviderError
from ._errors import mask

#: Refresh once this share of the credentials' lifetime has passed.
REFRESH_AT = 0.8
_STS_VERSION = "2011-06-15"
_STS_NS = {"sts": f"https://sts.amazonaws.com/doc/{_STS_VERSION}/"}
#: How long an error answer is kept before asking again (seconds): a refusal is not retried in a tight loop.
_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class AwsCredentials:
    """Session credentials: never to be logged."""

    key: str
    secret: str
    token: str
    expires: float  #: wall-clock seconds since the epoch
    obtained: float  #: when they were fetched (wall clock)

    def stale(self, now: float) -> bool:
        """Whether ``REFRESH_AT`` of their lifetime has passed at ``now``."""
        return now >= self.obtained + REFRESH_AT * max(0.0, self.expires - self.obtained)


class _Source:
    """Credentials from one identity, fetched when first asked for and again when stale (thread-safe)."""

    #: what the NodeClass's Ready condition says the credentials come from (no secret in it)
    describe: str

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._current: AwsCredentials | None = None
        self._failed: tuple[float, ProviderError] | None = None

    def credentials(self, timeout: float) -> AwsCredentials:
        """The current credentials, fetched anew if there are none or they are stale."""
        with self._lock:
            now = (self._clock or wall_clock)()
            current = self._current
            if current is not None and not current.stale(now):
                return current
            if self._failed is not None and now - self._failed[0] < _RETRY_AFTER and current is None:
                raise self._failed[1]
            try:
                fresh = self._fetch(timeout, now)
            except ProviderError as error:
                if current is not None and now < current.expires:
                    return current  # the old ones still work; the next call asks again
                self._failed = (now, error)
                raise
            self._current, self._failed = fresh, None
            return fresh

    def _fetch(self, timeout: float, now: float) -> AwsCredentials:
        raise NotImplementedError


class WebIdentity(_Source):
    """IRSA: the projected token exchanged with STS AssumeRoleWithWebIdentity."""

    def __init__(
        self,
        role_arn: str,
        token_file: str,
        endpoint: str,
        session_name: str,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(clock)
        self.role_arn = role_arn
        self.token_file = token_file
        self.endpoint = endpoint
        self.session_name = session_name
        self.describe = f"the web identity token (IRSA, role {role_arn}, STS {endpoint})"

    def _fetch(self, timeout: float, now: float) -> AwsCredentials:
        import requests  # noqa: PLC0415 - libcloud's own dependency; only needed here

        token = _read_token(self.token_file, "AWS_WEB_IDENTITY_TOKEN_FILE")
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": _STS_VERSION,
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name,
            "WebIdentityToken": token,
        }
        what = f"ec2: exchanging the web identity token for role {self.role_arn} with STS ({self.endpoint})"
        try:
            response = requests.post(
                self.endpoint, data=form, headers={"Accept": "application/xml"}, timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            raise _unreachable(what, type(error).__name__) from None
        body = response.text
        if response.status_code != 200:
            code, message = _sts_error(body)
            raise _refused(what, response.status_code, code, mask(message, [token]))
        try:
            root = ET.fromstring(body)
            found = root.find("sts:AssumeRoleWithWebIdentityResult/sts:Credentials", _STS_NS)
            if found is None:
                raise ValueError("no Credentials element")
            fields = {name: (found.findtext(f"sts:{name}", None, _STS_NS) or "") for name in _FIELDS}
            expires = _timestamp(fields["Expiration"])
        except (ET.ParseError, ValueError):
            raise _malformed(what) from None
        if not (fields["AccessKeyId"] and fields["SecretAccessKey"] and fields["SessionToken"]):
            raise _malformed(what)
        return AwsCredentials(fields["AccessKeyId"], fields["SecretAccessKey"], fields["SessionToken"], expires, now)


class PodIdentity(_Source):
    """EKS Pod Identity: a GET of the agent's URI, authorised by the pod's token."""

    def __init__(
        self, uri: str, token_file: str | None, token: str | None, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__(clock)
        self.uri = uri
        self.token_file = token_file
        self._token = token
        self.describe = f"EKS Pod Identity ({uri})"

    def _fetch(self, timeout: float, now: float) -> AwsCredentials:
        import requests  # noqa: PLC0415

        if self.token_file:
            token = _read_token(self.token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        else:
            token = self._token or ""
        what = f"ec2: fetching credentials from EKS Pod Identity ({self.uri})"
        headers = {"Accept": "application/json", **({"Authorization": token} if token else {})}
        try:
            response = requests.get(self.uri, headers=headers, timeout=timeout, allow_redirects=False)
        except requests.RequestException as error:
            raise _unreachable(what, type(error).__name__) from None
        if response.status_code != 200:
            code, message = _json_error(response.text)
            raise _refused(what, response.status_code, code, mask(message, [token]))
        try:
            answer = json.loads(response.text)
            fields = {name: str(answer.get(name) or "") for name in ("AccessKeyId", "SecretAccessKey", "Token")}
            expires = _timestamp(str(answer.get("Expiration") or ""))
        except (ValueError, AttributeError):
            raise _malformed(what) from None
        if not all(fields.values()):
            raise _malformed(what)
        return AwsCredentials(fields["AccessKeyId"], fields["SecretAccessKey"], fields["Token"], expires, now)


def wall_clock() -> float:
    """Now, in seconds since the epoch (what credentials' expirations are in); tests replace it."""
    return time.time()


_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
_SOURCES: dict[tuple[str, ...], _Source] = {}
_SOURCES_LOCK = threading.Lock()


def from_environment(region: str | None, environ: Mapping[str, str] | None = None) -> _Source | None:
    """The identity this process's environment gives it (IRSA first, then EKS Pod Identity), or None; one
    source per identity, shared by the whole process. ``region`` is the NodeClass's, for the STS endpoint
    when the environment names none."""
    env = os.environ if environ is None else environ
    role, token_file = env.get("AWS_ROLE_ARN", ""), env.get("AWS_WEB_IDENTITY_TOKEN_FILE", "")
    key: tuple[str, ...]
    make: Callable[[], _Source]
    if role and token_file:
        endpoint = sts_endpoint(env, region)
        session = env.get("AWS_ROLE_SESSION_NAME") or "kube-node"
        key = ("irsa", role, token_file, endpoint, session)

        def make() -> _Source:
            return WebIdentity(role, token_file, endpoint, session)

    elif env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        uri = env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        pod_token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") or None
        pod_token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") or None
        key = ("pod-identity", uri, pod_token_file or "", pod_token or "")

        def make() -> _Source:
            return PodIdentity(uri, pod_token_file, pod_token)

    else:
        return None
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = make()
        return _SOURCES[key]


def sts_endpoint(env: Mapping[str, str], region: str | None) -> str:
    """Where AssumeRoleWithWebIdentity goes (see the module's docstring)."""
    override = env.get("AWS_ENDPOINT_URL_STS") or ""
    if override:
        return override
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or region
    if env.get("AWS_STS_REGIONAL_ENDPOINTS", "").lower() == "legacy" or not region:
        return "https://sts.amazonaws.com/"
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/"


def _read_token(path: str, variable: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as error:
        raise ProviderError(
            f"ec2: cannot read the token file {path} ({variable}): {error.strerror or type(error).__name__}; "
            "is the ServiceAccount token projected into the pod?",
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code="CLOUD_IDENTITY_TOKEN_UNREADABLE",
        ) from None
    if not token:
        raise ProviderError(
            f"ec2: the token file {path} ({variable}) is empty",
            error_class=ErrorClass.INVALID_CONFIGURATION,
            code="CLOUD_IDENTITY_TOKEN_UNREADABLE",
        )
    return token


def _timestamp(value: str) -> float:
    """An ISO 8601 time (``2024-05-01T10:00:00Z``) as seconds since the epoch."""
    if not value:
        raise ValueError("no expiration")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _sts_error(body: str) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    error = root.find("sts:Error", _STS_NS)
    if error is None:
        error = root.find("Error")
    if error is None:
        return "", ""
    code = error.findtext("sts:Code", None, _STS_NS) or error.findtext("Code") or ""
    message = error.findtext("sts:Message", None, _STS_NS) or error.findtext("Message") or ""
    return code, message


def _json_error(body: str) -> tuple[str, str]:
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(answer, dict):
        return "", ""
    code = answer.get("code") or answer.get("Code") or ""
    return str(code), str(answer.get("message") or answer.get("Message") or "")


def _refused(what: str, status: int, code: str, message: str) -> ProviderError:
    said = f"{code}: {message}" if code and message else code or message or "no reason given"
    said = " ".join(said.split())[:400]
    if status >= 500 or status == 429 or code in ("Throttling", "IDPCommunicationError", "ServiceUnavailable"):
        return ProviderError(
            f"{what} failed: answered {status} ({said}); it will be retried",
            error_class=ErrorClass.TRANSIENT,
            code="CLOUD_IDENTITY_UNAVAILABLE",
        )
    return ProviderError(
        f"{what} was refused: {status} ({said}); check the IAM role's trust policy (the cluster's OIDC provider, "
        "the ServiceAccount as subject) or the pod identity association",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="CLOUD_IDENTITY_REFUSED",
    )


def _unreachable(what: str, reason: str) -> ProviderError:
    return ProviderError(
        f"{what} failed: could not reach it ({reason}); it will be retried",
        error_class=ErrorClass.TRANSIENT,
        code="CLOUD_IDENTITY_UNAVAILABLE",
    )


def _malformed(what: str) -> ProviderError:
    return ProviderError(
        f"{what} failed: the answer has no complete credentials (AccessKeyId, SecretAccessKey, session token, "
        "Expiration)",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="CLOUD_IDENTITY_REFUSED",
    )
