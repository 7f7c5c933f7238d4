"""Credentials without a Secret: EC2 from the pod's web identity (IRSA) or EKS Pod Identity, GCE from the metadata
server, each against recorded answers (requests-mock) and libcloud's real drivers over their offline fakes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest
import requests_mock as requests_mocking

from nodeset_controller.providers import ErrorClass, ProviderError
from nodeset_controller.providers.libcloud import LibcloudProvider, _aws_identity

from ._clouds import SPEC, Harness, maker

ROLE = "arn:aws:iam::111122223333:role/kube-node"
STS = "https://sts.eu-west-1.amazonaws.com/"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
#: the projected ServiceAccount tokens the kubelet writes, before and after it rotates the file
WEB_TOKENS = ("eyJhbGciOiJSUzI1NiJ9.first-projected-token.sig", "eyJhbGciOiJSUzI1NiJ9.rotated-token.sig")
#: session tokens have "/", "+" and "=": a URL quotes them
SESSIONS = (
    ("ASIAFIRSTSESSION0001", "first/secret+key=", "IQoJb3JpZ2luX2VjE/first+session=="),
    ("ASIASECONDSESSION002", "second/secret+key=", "IQoJb3JpZ2luX2VjE/second+session=="),
)


def sts_answer(key: str, secret: str, token: str, expiration: str = "2023-11-14T23:13:20Z") -> str:
    """AssumeRoleWithWebIdentity's answer, as STS gives it (one hour)."""
    return f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:kube-node-system:kube-node</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::111122223333:assumed-role/kube-node/kube-node</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:kube-node</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{key}</AccessKeyId>
    </Credentials>
    <SourceIdentity/>
    <Provider>arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""


STS_ACCESS_DENIED = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code>
    <Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error>
  <RequestId>c9d3d8b5-4bd3-4e3a-9b43-EXAMPLE</RequestId>
</ErrorResponse>"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_aws_identity, "wall_clock", clock)
    return clock


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No AWS identity in the environment but what a test puts there, and no identity kept between tests."""
    for name in (
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_STS_REGIONAL_ENDPOINTS",
        "AWS_ENDPOINT_URL_STS",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_aws_identity, "_SOURCES", {})
    yield tmp_path


@pytest.fixture
def irsa(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment EKS's pod identity webhook gives a pod whose ServiceAccount names a role."""
    token_file = aws_env / "token"
    token_file.write_text(WEB_TOKENS[0])
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "regional")
    return token_file


def keyless_ec2() -> Callable[..., LibcloudProvider]:
    return maker(
        "ec2",
        {},
        size="m5.large",
        image="ami-57ba933a",
        location="eu-west-1a",
        driver_options={"region": "eu-west-1"},
    )


def sts_form(request: requests_mocking.request._RequestObjectProxy) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.text).items()}


def test_ec2_without_a_secret_exchanges_the_web_identity_token_and_signs_with_the_session(
    ec2: Harness, irsa: Path, clock: Clock, requests_mock: requests_mocking.Mocker
) -> None:
    sts = requests_mock.post(STS, text=sts_answer(*SESSIONS[0]))
    provider = keyless_ec2()()

    summary = provider.validate()
    provider.create(SPEC)

    assert f"credentials from the web identity token (IRSA, role {ROLE}" in summary
    [call] = sts.request_history
    form = sts_form(call)
    assert form == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "kube-node",
        "WebIdentityToken": WEB_TOKENS[0],
    }
    assert "Authorization" not in call.headers  # an unsigned call: the token is the proof
    driver = provider._driver()
    assert (driver.key, driver.secret, driver.connection.token) == SESSIONS[0]
    # Every EC2 call carries the session token, and is signed with the session's key.
    for action in ("DescribeInstances", "RunInstances"):
        headers = ec2.cloud.headers[action]
        assert headers["x-amz-security-token"] == SESSIONS[0][2]
        assert f"Credential={SESSIONS[0][0]}/" in headers["Authorization"]


def test_the_session_is_refreshed_at_80_percent_of_its_lifetime_from_the_rotated_token(
    ec2: Harness, irsa: Path, clock: Clock, requests_mock: requests_mocking.Mocker
) -> None:
    sts = requests_mock.post(
        STS,
        [
            {"text": sts_answer(*SESSIONS[0])},
            {"text": sts_answer(*SESSIONS[1], expiration="2023-11-15T00:13:20Z")},
        ],
    )
    provider = keyless_ec2()()
    provider.list()
    clock.now = NOW + 0.79 * 3600
    provider.list()
    other = keyless_ec2()()  # another NodeClass (or the same one rebuilt): the same identity, one session
    other.validate()
    assert len(sts.request_history) == 1

    irsa.write_text(WEB_TOKENS[1])  # the kubelet rotated the projected token
    clock.now = NOW + 0.81 * 3600
    provider.create(SPEC)

    assert len(sts.request_history) == 2
    assert sts_form(sts.request_history[1])["WebIdentityToken"] == WEB_TOKENS[1]
    driver = provider._driver()
    assert (driver.key, driver.secret, driver.connection.token) == SESSIONS[1]
    headers = ec2.cloud.headers["RunInstances"]
    assert headers["x-amz-security-token"] == SESSIONS[1][2]
    assert f"Credential={SESSIONS[1][0]}/" in headers["Authorization"]


def test_sts_refusing_the_token_is_invalid_configuration_naming_the_role_never_the_token(
    ec2: Harness, irsa: Path, clock: Clock, requests_mock: requests_mocking.Mocker
) -> None:
    requests_mock.post(STS, status_code=403, text=STS_ACCESS_DENIED)

    with pytest.raises(ProviderError) as raised:
        keyless_ec2()().validate()

    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert raised.value.code == "CLOUD_IDENTITY_REFUSED"
    message = str(raised.value)
    assert ROLE in message and "AccessDenied" in message and "trust policy" in message
    assert WEB_TOKENS[0] not in message
    assert ec2.cloud.requests == []  # EC2 was never called without credentials


def test_sts_unavailable_is_transient(
    ec2: Harness, irsa: Path, clock: Clock, requests_mock: requests_mocking.Mocker
) -> None:
    requests_mock.post(STS, status_code=503, text="<ErrorResponse/>")

    with pytest.raises(ProviderError) as raised:
        keyless_ec2()().list()

    assert (raised.value.error_class, raised.value.code) == (ErrorClass.TRANSIENT, "CLOUD_IDENTITY_UNAVAILABLE")


def test_a_session_that_fails_to_refresh_is_used_until_it_expires(
    ec2: Harness, irsa: Path, clock: Clock, requests_mock: requests_mocking.Mocker
) -> None:
    requests_mock.post(STS, [{"text": sts_answer(*SESSIONS[0])}, {"status_code": 503, "text": "<x/>"}])
    provider = keyless_ec2()()
    provider.list()
    clock.now = NOW + 0.9 * 3600

    provider.list()  # STS is down; the session has six minutes left

    assert provider._driver().key == SESSIONS[0][0]


def test_ec2_without_a_secret_or_an_identity_says_what_is_missing(aws_env: Path, ec2: Harness) -> None:
    with pytest.raises(ProviderError) as raised:
        keyless_ec2()().validate()

    assert (raised.value.error_class, raised.value.code) == (ErrorClass.INVALID_CONFIGURATION, "NO_CLOUD_IDENTITY")
    message = str(raised.value)
    assert "credentialsSecretRef" in message and "AWS_ROLE_ARN" in message and "AWS_WEB_IDENTITY_TOKEN_FILE" in message


def test_an_unreadable_token_file_is_named(irsa: Path, ec2: Harness, clock: Clock) -> None:
    irsa.unlink()

    with pytest.raises(ProviderError) as raised:
        keyless_ec2()().validate()

    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert raised.value.code == "CLOUD_IDENTITY_TOKEN_UNREADABLE"
    assert str(irsa) in str(raised.value)


def test_an_ec2_error_quoting_the_session_credentials_is_masked(
    ec2: Harness, irsa: Path, clock: Clock, requests_mock: requests_mocking.Mocker
) -> None:
    requests_mock.post(STS, text=sts_answer(*SESSIONS[0]))
    key, secret, token = SESSIONS[0]
    ec2.cloud.create_error = (
        400,
        "<Response><Errors><Error><Code>UnknownParameter</Code><Message>request "
        f"?X-Amz-Security-Token={quote(token, safe='')}&amp;Other=1 key {key} secret {secret} token {token}"
        "</Message></Error></Errors><RequestID>r-1</RequestID></Response>",
    )

    with pytest.raises(ProviderError) as raised:
        keyless_ec2()().create(SPEC)

    message = str(raised.value)
    assert "UnknownParameter" in message
    for credential in (*SESSIONS[0], quote(token, safe=""), quote(secret, safe="")):
        assert credential not in message


@pytest.mark.parametrize(
    ("env", "region", "endpoint"),
    [
        ({}, "eu-west-1", "https://sts.eu-west-1.amazonaws.com/"),
        ({"AWS_REGION": "us-west-2"}, "eu-west-1", "https://sts.us-west-2.amazonaws.com/"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, None, "https://sts.ap-south-1.amazonaws.com/"),
        ({"AWS_REGION": "cn-north-1"}, None, "https://sts.cn-north-1.amazonaws.com.cn/"),
        ({"AWS_STS_REGIONAL_ENDPOINTS": "legacy", "AWS_REGION": "us-west-2"}, None, "https://sts.amazonaws.com/"),
        ({}, None, "https://sts.amazonaws.com/"),
        ({"AWS_ENDPOINT_URL_STS": "https://sts.internal:8443/", "AWS_REGION": "us-west-2"}, None, None),
    ],
)
def test_the_sts_endpoint(env: dict[str, str], region: str | None, endpoint: str | None) -> None:
    assert _aws_identity.sts_endpoint(env, region) == (endpoint or "https://sts.internal:8443/")


def test_ec2_through_eks_pod_identity(
    ec2: Harness, aws_env: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, requests_mock: requests_mocking.Mocker
) -> None:
    uri = "http://169.254.170.23/v1/credentials"
    token_file = aws_env / "eks-pod-identity-token"
    token_file.write_text("pod-identity-token-1\n")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    key, secret, token = SESSIONS[0]
    agent = requests_mock.get(
        uri,
        text=json.dumps(
            {
                "AccessKeyId": key,
                "SecretAccessKey": secret,
                "Token": token,
                "AccountId": "111122223333",
                "Expiration": "2023-11-14T23:13:20Z",
            }
        ),
    )
    provider = keyless_ec2()()

    summary = provider.validate()

    assert "credentials from EKS Pod Identity" in summary
    assert agent.request_history[0].headers["Authorization"] == "pod-identity-token-1"
    driver = provider._driver()
    assert (driver.key, driver.secret, driver.connection.token) == SESSIONS[0]


def test_pod_identity_refused_is_invalid_configuration(
    ec2: Harness, aws_env: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, requests_mock: requests_mocking.Mocker
) -> None:
    uri = "http://169.254.170.23/v1/credentials"
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token-2")
    requests_mock.get(uri, status_code=400, json={"code": "AccessDeniedException", "message": "no association"})

    with pytest.raises(ProviderError) as raised:
        keyless_ec2()().validate()

    assert (raised.value.error_class, raised.value.code) == (ErrorClass.INVALID_CONFIGURATION, "CLOUD_IDENTITY_REFUSED")
    assert "AccessDeniedException" in str(raised.value) and "pod-identity-token-2" not in str(raised.value)


# -- GCE: the metadata server ------------------------------------------------------------------------------

METADATA_TOKEN = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"


@pytest.fixture
def no_cached_token(gce: Harness, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """The gce harness, with no token in the cache file: the driver must fetch one."""
    from libcloud.common.google import GoogleOAuth2Credential

    monkeypatch.setattr(GoogleOAuth2Credential, "_get_token_from_file", lambda self: None)
    return gce


def keyless_gce() -> Callable[..., LibcloudProvider]:
    return maker(
        "gce",
        {},
        size="n1-standard-1",
        image="debian-7",
        location="us-central1-a",
        driver_options={"project": "project_name", "datacenter": "us-central1-a"},
    )


def test_gce_without_a_secret_takes_its_token_from_the_metadata_server(
    no_cached_token: Harness, requests_mock: requests_mocking.Mocker
) -> None:
    answer = {"access_token": "ya29.from-the-metadata-server", "expires_in": 3599, "token_type": "Bearer"}
    metadata = requests_mock.get(METADATA_TOKEN, json=answer)
    provider = keyless_gce()()

    summary = provider.validate()
    provider.create(SPEC)

    assert "credentials from the GCE metadata server" in summary
    assert metadata.called and metadata.request_history[0].headers["Metadata-Flavor"] == "Google"
    connection = provider._driver().connection
    assert connection.oauth2_credential.auth_type == "GCE"
    assert connection.pre_connect_hook({}, {})[1]["Authorization"] == "Bearer ya29.from-the-metadata-server"
    assert no_cached_token.cloud.sent("insert")  # the machine was made with that token


def test_gce_with_no_service_account_on_the_metadata_server_is_invalid_configuration(
    no_cached_token: Harness, requests_mock: requests_mocking.Mocker
) -> None:
    requests_mock.get(METADATA_TOKEN, status_code=404, text="not found")

    with pytest.raises(ProviderError) as raised:
        keyless_gce()().validate()

    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert raised.value.code == "METADATA_TOKEN_UNAVAILABLE"
    assert "iam.gke.io/gcp-service-account" in str(raised.value)


def test_gce_without_a_secret_refuses_another_auth_type(no_cached_token: Harness) -> None:
    with pytest.raises(ProviderError) as raised:
        keyless_gce()(driver_options={"project": "project_name", "auth_type": "SA"}).validate()

    assert (raised.value.error_class, raised.value.code) == (ErrorClass.INVALID_CONFIGURATION, "INVALID_DRIVER_OPTIONS")
