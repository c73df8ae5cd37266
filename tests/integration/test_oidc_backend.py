"""The OpenID Connect backend against a real provider on loopback, following the redirect.

Each test runs the login as a browser would: ``begin()`` gives the authorization URL, a real
GET to the provider answers a redirect to the callback, and ``complete()`` gets the
callback's query parameters.  The provider (tests/oidc_provider.py) signs real RS256 tokens
and can be told to misbehave.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from fedoracloud.auth import BackendUnavailable, LoginFailed, Membership, Person
from fedoracloud.auth.oidc import OidcBackend
from fedoracloud.settings import ConfigError

from ..oidc_provider import GROUPS_SCOPE, OidcProvider, oidc_provider, unreachable_issuer

__all__ = ["oidc_provider"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

CALLBACK = "http://127.0.0.1:9/login/oidc/callback"


def authorize(backend: OidcBackend) -> tuple[dict[str, str], dict[str, str]]:
    """begin() and the browser's visit to the provider: the callback's params, the kept dict."""
    url, pending = backend.begin(CALLBACK)
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return dict(parse_qsl(urlsplit(location).query)), pending


def login(backend: OidcBackend) -> tuple[Person, dict[str, Any]]:
    """A whole login."""
    params, pending = authorize(backend)
    return backend.complete(params, pending)


def refused(backend: OidcBackend) -> LoginFailed:
    """The error of a login that must fail, checking it is a refusal, not an outage."""
    with pytest.raises(LoginFailed) as caught:
        login(backend)
    assert not isinstance(caught.value, BackendUnavailable), caught.value
    return caught.value


@pytest.fixture
def backend(oidc_provider: OidcProvider) -> OidcBackend:
    return OidcBackend(oidc_provider.settings())


# -- success ----------------------------------------------------------------------------------


def test_login_gives_the_person_their_groups_and_tokens(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    started = time.perf_counter()
    person, tokens = login(backend)
    elapsed = time.perf_counter() - started
    print(f"\none OIDC login (begin → authorize → complete): {elapsed * 1000:.1f} ms")

    assert person == Person(
        username="alice",
        display_name="Alice Liddell",
        email="alice@fedoraproject.org",
        memberships=(Membership("sysadmin-cloud"), Membership("packager")),
    )
    assert all(m.role_type == "user" and m.status == "approved" for m in person.memberships)
    assert tokens["access_token"] in oidc_provider.tokens
    assert tokens["refresh_token"]
    assert tokens["expires_at"] > time.time() + 3000
    assert tokens["sub"] == oidc_provider.user.sub
    assert oidc_provider.token_auth_used == ["client_secret_basic"]


def test_the_authorization_url_asks_for_code_with_pkce_nonce_and_fedora_scopes(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    url, pending = backend.begin(CALLBACK)
    assert url.startswith(oidc_provider.endpoint("Authorization") + "?")
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["response_type"] == "code"
    assert query["client_id"] == oidc_provider.client_id
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"].split() == ["openid", "profile", "email", GROUPS_SCOPE]
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == pending["state"]
    assert query["nonce"] == pending["nonce"]
    assert "code_verifier" not in query
    assert query["code_challenge"] != pending["code_verifier"]
    assert set(pending) == {"state", "nonce", "code_verifier", "redirect_uri"}
    assert pending["redirect_uri"] == CALLBACK
    _, other = backend.begin(CALLBACK)
    assert other["state"] != pending["state"] and other["nonce"] != pending["nonce"]


def test_nickname_then_preferred_username_then_sub_is_the_username(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.user.nickname = "alice"
    oidc_provider.user.preferred_username = "alice.other"
    assert login(backend)[0].username == "alice"
    oidc_provider.user.nickname = None
    assert login(backend)[0].username == "alice.other"
    oidc_provider.user.preferred_username = None
    oidc_provider.user.sub = "bob"
    assert login(backend)[0].username == "bob"


def test_a_username_fedoracloud_cannot_use_is_refused(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.user.nickname = "Not A Name"
    assert "cannot be used here" in str(refused(backend))


def test_client_secret_post_when_the_provider_only_takes_that(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.token_auth_methods = ["client_secret_post"]
    assert login(backend)[0].username == "alice"
    assert oidc_provider.token_auth_used == ["client_secret_post"]


def test_discovery_and_keys_are_fetched_once_for_many_logins(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    for _ in range(3):
        login(backend)
    assert oidc_provider.count("openid-configuration") == 1
    assert oidc_provider.count("Jwks") == 1


def test_a_rotated_signing_key_is_fetched_once(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    login(backend)
    oidc_provider.rotate_key()
    assert login(backend)[0].username == "alice"
    assert login(backend)[0].username == "alice"
    assert oidc_provider.count("Jwks") == 2


# -- groups -----------------------------------------------------------------------------------


def test_a_missing_groups_claim_means_no_memberships(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.user.groups = None
    person, _ = login(backend)
    assert person.username == "alice"
    assert person.memberships == ()


def test_groups_come_from_the_id_token_when_userinfo_has_none(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.groups_in_userinfo = False
    oidc_provider.user.groups = ["sysadmin-cloud"]
    assert login(backend)[0].memberships == (Membership("sysadmin-cloud"),)


def test_userinfo_groups_win_over_the_id_token(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.groups_in_id_token = False
    oidc_provider.user.groups = ["cloud-ops"]
    assert login(backend)[0].memberships == (Membership("cloud-ops"),)


# -- refusals -------------------------------------------------------------------------------


def test_an_id_token_signed_by_another_key_is_refused(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.tamper_next_id_token()
    error = refused(backend)
    assert str(error) == "the login was tampered with or expired: invalid signature"


def test_an_id_token_signed_by_an_unknown_key_is_refused_after_one_refetch(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.sign_next_with_unknown_key()
    assert "unknown key" in str(refused(backend))
    assert oidc_provider.count("Jwks") == 2


def test_a_wrong_nonce_is_refused(oidc_provider: OidcProvider, backend: OidcBackend) -> None:
    oidc_provider.wrong_nonce_next()
    assert str(refused(backend)) == "the login was tampered with or expired: wrong nonce"


def test_an_expired_id_token_is_refused(oidc_provider: OidcProvider, backend: OidcBackend) -> None:
    oidc_provider.expire_next_id_token()
    assert str(refused(backend)) == "the login was tampered with or expired: ID token expired"


def test_an_id_token_for_another_client_is_refused(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.wrong_audience_next()
    assert str(refused(backend)) == "the login was tampered with or expired: wrong audience"


def test_an_id_token_from_another_issuer_is_refused(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.wrong_issuer_next()
    assert str(refused(backend)) == "the login was tampered with or expired: wrong issuer"


def test_a_forged_groups_claim_in_an_unsigned_token_is_refused(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.user.groups = []
    oidc_provider.groups_in_userinfo = False
    oidc_provider.unsigned_next_id_token(groups=["sysadmin-main", "sysadmin-cloud"])
    error = refused(backend)
    assert str(error) == "the login was tampered with or expired: the ID token is not signed"


def test_a_state_mismatch_is_refused_before_the_code_is_used(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    params, pending = authorize(backend)
    forged = {**params, "state": "someone-elses-state"}
    with pytest.raises(LoginFailed, match="state mismatch"):
        backend.complete(forged, pending)
    with pytest.raises(LoginFailed, match="state mismatch"):
        backend.complete({"code": params["code"]}, pending)
    assert oidc_provider.count("Token") == 0
    assert backend.complete(params, pending)[0].username == "alice"


def test_a_callback_without_a_login_in_progress_is_refused(backend: OidcBackend) -> None:
    params, _ = authorize(backend)
    with pytest.raises(LoginFailed, match="no login was in progress"):
        backend.complete(params, {})


def test_a_wrong_code_verifier_is_refused(backend: OidcBackend) -> None:
    params, pending = authorize(backend)
    pending = {**pending, "code_verifier": "x" * 64}
    with pytest.raises(LoginFailed, match=r"the code was refused \(invalid_grant\)") as caught:
        backend.complete(params, pending)
    assert not isinstance(caught.value, BackendUnavailable)


def test_a_code_cannot_be_used_twice(backend: OidcBackend) -> None:
    params, pending = authorize(backend)
    backend.complete(params, pending)
    with pytest.raises(LoginFailed, match="invalid_grant"):
        backend.complete(params, pending)


def test_access_denied_at_the_provider_is_a_login_failure(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.deny_next()
    params, pending = authorize(backend)
    assert params["error"] == "access_denied" and params["state"] == pending["state"]
    with pytest.raises(LoginFailed, match=r"cancelled at Fedora Accounts \(access_denied\)") as e:
        backend.complete(params, pending)
    assert not isinstance(e.value, BackendUnavailable)


def test_another_provider_error_is_named_safely(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    oidc_provider.deny_next("temporarily_unavailable")
    params, pending = authorize(backend)
    with pytest.raises(LoginFailed, match=r"refused the login \(temporarily_unavailable\)"):
        backend.complete(params, pending)
    with pytest.raises(LoginFailed, match=r"refused the login \(error\)"):
        backend.complete({"state": pending["state"], "error": "<script>"}, pending)


def test_a_wrong_client_secret_is_an_outage_for_the_administrator(
    oidc_provider: OidcProvider,
) -> None:
    backend = OidcBackend(oidc_provider.settings(oidc_client_secret="not-the-secret"))
    with pytest.raises(BackendUnavailable, match="client credentials"):
        login(backend)


def test_an_unknown_token_endpoint_auth_method_setting_is_a_config_error(
    oidc_provider: OidcProvider,
) -> None:
    key = "fedoracloud.oidc.token_endpoint_auth_method"
    with pytest.raises(ConfigError, match=key):
        OidcBackend(oidc_provider.settings(extra={key: "private_key_jwt"}))
    post = OidcBackend(oidc_provider.settings(extra={key: "client_secret_post"}))
    login(post)
    assert oidc_provider.token_auth_used == ["client_secret_post"]


# -- the provider down or talking nonsense --------------------------------------------------


def test_a_stopped_provider_is_unavailable_at_begin(oidc_provider: OidcProvider) -> None:
    backend = OidcBackend(oidc_provider.settings())
    oidc_provider.stop()
    with pytest.raises(BackendUnavailable) as caught:
        backend.begin(CALLBACK)
    message = str(caught.value)
    assert message.startswith("Fedora Accounts could not be reached: connection failed")
    assert "openid-configuration" in message


def test_a_provider_that_stops_during_the_login_is_unavailable_at_complete(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    params, pending = authorize(backend)
    oidc_provider.stop()
    with pytest.raises(BackendUnavailable, match="Fedora Accounts could not be reached"):
        backend.complete(params, pending)


def test_an_unreachable_port_is_unavailable(oidc_provider: OidcProvider) -> None:
    backend = OidcBackend(oidc_provider.settings(oidc_issuer=unreachable_issuer()))
    with pytest.raises(BackendUnavailable, match="Fedora Accounts could not be reached"):
        backend.begin(CALLBACK)


@pytest.mark.parametrize("endpoint", ["openid-configuration", "Jwks", "Token", "UserInfo"])
def test_an_endpoint_answering_nonsense_is_unavailable(
    oidc_provider: OidcProvider, backend: OidcBackend, endpoint: str
) -> None:
    name = ".well-known/openid-configuration" if endpoint == "openid-configuration" else endpoint
    oidc_provider.nonsense.add(name)
    with pytest.raises(BackendUnavailable, match="Fedora Accounts could not be reached"):
        login(backend)


def test_a_discovery_document_for_another_issuer_is_unavailable(
    oidc_provider: OidcProvider,
) -> None:
    settings = oidc_provider.settings(oidc_issuer=oidc_provider.base_url + "/other/")
    with pytest.raises(BackendUnavailable):
        OidcBackend(settings).begin(CALLBACK)


# -- later membership checks ------------------------------------------------------------------


def test_refresh_sees_a_lost_group(oidc_provider: OidcProvider, backend: OidcBackend) -> None:
    person, tokens = login(backend)
    assert Membership("packager") in person.memberships
    assert oidc_provider.user.groups is not None
    oidc_provider.user.groups.remove("packager")
    result = backend.refresh(tokens)
    assert result is not None
    again, new_tokens = result
    assert again.username == "alice"
    assert again.memberships == (Membership("sysadmin-cloud"),)
    assert new_tokens["access_token"] == tokens["access_token"]


def test_refresh_renews_an_expired_access_token(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    _, tokens = login(backend)
    oidc_provider.expire_access_tokens()
    oidc_provider.user.groups = ["cloud-ops"]
    result = backend.refresh({**tokens, "expires_at": int(time.time()) - 1})
    assert result is not None
    person, new_tokens = result
    assert person.memberships == (Membership("cloud-ops"),)
    assert new_tokens["access_token"] != tokens["access_token"]
    assert new_tokens["refresh_token"] != tokens["refresh_token"]
    assert new_tokens["expires_at"] > time.time()
    # a token the provider rejected (though we thought it fresh) is renewed too
    oidc_provider.expire_access_tokens()
    result = backend.refresh(new_tokens)
    assert result is not None and result[1]["access_token"] != new_tokens["access_token"]


def test_refresh_ends_the_session_when_the_provider_refuses(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    _, tokens = login(backend)
    oidc_provider.revoke_tokens()
    assert backend.refresh(tokens) is None
    assert backend.refresh({}) is None
    assert backend.refresh({**tokens, "refresh_token": None, "access_token": "forged"}) is None


def test_refresh_with_the_provider_down_is_unavailable(
    oidc_provider: OidcProvider, backend: OidcBackend
) -> None:
    _, tokens = login(backend)
    oidc_provider.stop()
    with pytest.raises(BackendUnavailable, match="Fedora Accounts could not be reached"):
        backend.refresh(tokens)


def test_oidc_cannot_list_members_or_read_memberships_by_name(backend: OidcBackend) -> None:
    assert backend.memberships("alice") is None
    assert backend.group_members("sysadmin-cloud") == []
    assert not hasattr(backend, "authenticate")
