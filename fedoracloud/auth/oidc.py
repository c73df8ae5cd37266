"""The OpenID Connect login backend: Fedora Accounts (``https://id.fedoraproject.org/openidc/``).

A redirect backend, not a password one: ``begin`` gives the provider's authorization URL
(code flow with PKCE S256, a ``state`` and a ``nonce``) and a small dict the app keeps
server-side; ``complete`` takes the callback's query parameters and that dict, exchanges the
code, verifies the ID token against the provider's published keys and reads the userinfo;
``refresh`` re-reads the userinfo later so that group memberships are re-checked every
``membership_ttl``.

OAuth is Authlib's (``OAuth2Session``); the ID token is checked with joserfc and Authlib's
``CodeIDToken`` claims rules.  Every failure is a ``LoginFailed`` whose message is safe to
show; a provider that cannot be reached or answers nonsense is ``BackendUnavailable``.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from ..settings import ConfigError, Settings
from . import BackendUnavailable, LoginFailed, Membership, Person
from .htpasswd import InvalidUsername, check_username

#: seconds every HTTP call to the provider may take
HTTP_TIMEOUT = 10.0
#: seconds the discovery document and the JWKS are trusted before being fetched again
DISCOVERY_TTL = 3600.0
#: an unknown ``kid`` re-fetches the JWKS at most this often (seconds)
JWKS_REFETCH_INTERVAL = 10.0
#: clock skew tolerated on ``exp``/``iat`` of an ID token (seconds)
CLOCK_LEEWAY = 30
#: an access token this close to its expiry is refreshed before use (seconds)
TOKEN_LEEWAY = 30
#: signature algorithms accepted for ID tokens (never ``none``, never HMAC)
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
TAMPERED = "the login was tampered with or expired"
PROVIDER = "Fedora Accounts"
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


def _unreachable(url: str, error: Exception) -> BackendUnavailable:
    """The error for a provider that did not answer at all."""
    if isinstance(error, requests.Timeout):
        why = f"no answer within {HTTP_TIMEOUT:g} s"
    elif isinstance(error, requests.ConnectionError):
        why = "connection failed"
    else:
        why = type(error).__name__
    return BackendUnavailable(f"{PROVIDER} could not be reached: {why} ({_where(url)})")


def _nonsense(url: str, what: str) -> BackendUnavailable:
    """The error for a provider that answered something unusable."""
    return BackendUnavailable(f"{PROVIDER} could not be reached: {what} ({_where(url)})")


def _where(url: str) -> str:
    """scheme://host/path of a URL, without its query (it never holds secrets here)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _error_code(value: Any) -> str:
    """An OAuth error code, or ``error`` when the provider sent something odd."""
    text = str(value or "")
    return text if _ERROR_CODE.match(text) else "error"


def _expected(pending: dict[str, str], key: str) -> str:
    """A value the app kept for this login; LoginFailed if it is missing."""
    value = pending.get(key) if isinstance(pending, dict) else None
    if not isinstance(value, str) or not value:
        raise LoginFailed(f"{TAMPERED}: no login was in progress")
    return value


def _same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


def _groups(claims: dict[str, Any], source: str) -> tuple[str, ...] | None:
    """The ``groups`` claim as names (None if absent); BackendUnavailable if malformed."""
    if "groups" not in claims or claims["groups"] is None:
        return None
    value = claims["groups"]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise _nonsense(source, "the groups claim is not a list of names")
    return tuple(dict.fromkeys(g for g in value if g))


def _text(claims: dict[str, Any], key: str) -> str:
    value = claims.get(key)
    return value if isinstance(value, str) else ""


class OidcBackend:
    """Logs people in through an OpenID provider (Fedora Accounts) and reads their groups."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self.scopes: tuple[str, ...] = tuple(settings.oidc_scopes)
        key = "fedoracloud.oidc.token_endpoint_auth_method"
        self.token_auth_method = str(settings.extra.get(key, "") or "").strip()
        if self.token_auth_method not in ("", *TOKEN_AUTH_METHODS):
            raise ConfigError(f"setting {key}: one of " + ", ".join(TOKEN_AUTH_METHODS))
        self.timeout = HTTP_TIMEOUT
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_at = 0.0
        self._jwks_refetched_at = 0.0

    # -- discovery --------------------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        """Where the provider's OpenID configuration is published."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def _get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object from the provider; BackendUnavailable on any failure."""
        try:
            response = requests.get(
                url, timeout=self.timeout, headers={"Accept": "application/json"}
            )
        except requests.RequestException as error:
            raise _unreachable(url, error) from None
        if response.status_code != 200:
            raise _nonsense(url, f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _nonsense(url, "the answer is not a JSON object")
        return data

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched lazily and cached for an hour."""
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_TTL:
                return self._metadata
            url = self.discovery_url
            data = self._get_json(url)
            for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(key), str) or not data[key]:
                    raise _nonsense(url, f"the discovery document has no {key}")
            if data["issuer"].rstrip("/") != self.issuer.rstrip("/"):
                raise _nonsense(url, f"the discovery document is for issuer {data['issuer']!r}")
            if not isinstance(data.get("userinfo_endpoint"), str):
                raise _nonsense(url, "the discovery document has no userinfo_endpoint")
            self._metadata = data
            self._metadata_at = time.monotonic()
            return data

    def _fetch_jwks(self) -> KeySet:
        url = self.metadata()["jwks_uri"]
        data = self._get_json(url)
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise _nonsense(url, "the published keys cannot be read") from None
        return keys

    def jwks(self, refetch: bool = False) -> KeySet:
        """The provider's signing keys, cached for an hour; ``refetch`` for an unknown kid."""
        now = time.monotonic()
        with self._lock:
            cached = self._jwks
            fresh = cached is not None and now - self._jwks_at < DISCOVERY_TTL
            if cached is not None and fresh and not refetch:
                return cached
            if cached is not None and refetch:
                if now - self._jwks_refetched_at < JWKS_REFETCH_INTERVAL:
                    return cached
                self._jwks_refetched_at = now
        keys = self._fetch_jwks()
        with self._lock:
            self._jwks = keys
            self._jwks_at = time.monotonic()
        return keys

    def _token_auth_method(self, metadata: dict[str, Any]) -> str:
        """client_secret_basic unless the settings or the provider ask for client_secret_post."""
        if self.token_auth_method:
            return self.token_auth_method
        supported = metadata.get("token_endpoint_auth_methods_supported")
        if (
            isinstance(supported, list)
            and "client_secret_basic" not in supported
            and "client_secret_post" in supported
        ):
            return "client_secret_post"
        return "client_secret_basic"

    def _session(
        self, metadata: dict[str, Any], token: dict[str, Any] | None = None
    ) -> OAuth2Session:
        """An Authlib OAuth 2 client for this provider, with timeouts.

        With a token it only reads resources: it has no token endpoint, so it never
        refreshes behind our back (``refresh`` does that explicitly, keeping the result).
        """
        extra = {} if token is not None else {"token_endpoint": metadata["token_endpoint"]}
        return OAuth2Session(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=self._token_auth_method(metadata),
            scope=" ".join(self.scopes),
            code_challenge_method="S256",
            token=token,
            leeway=0,
            default_timeout=self.timeout,
            **extra,
        )

    # -- the login ----------------------------------------------------------------------------

    def begin(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what to keep server-side until the callback."""
        metadata = self.metadata()
        state = generate_token(32)
        nonce = generate_token(32)
        code_verifier = generate_token(64)
        with self._session(metadata) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
                nonce=nonce,
            )
        pending = {
            "state": state,
            "nonce": nonce,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
        }
        return url, pending

    def complete(
        self, params: dict[str, str], pending: dict[str, str]
    ) -> tuple[Person, dict[str, Any]]:
        """Finish a login from the callback's query parameters and what ``begin`` kept.

        Returns the person and the tokens to keep for ``refresh``; raises LoginFailed (or
        BackendUnavailable) with a message safe to show.
        """
        state = _expected(pending, "state")
        nonce = _expected(pending, "nonce")
        code_verifier = _expected(pending, "code_verifier")
        redirect_uri = _expected(pending, "redirect_uri")
        got_state = params.get("state")
        if not isinstance(got_state, str) or not _same(got_state, state):
            raise LoginFailed(f"{TAMPERED}: state mismatch")
        metadata = self.metadata()
        callback_iss = params.get("iss")
        if callback_iss is not None and callback_iss != metadata["issuer"]:
            raise LoginFailed(f"{TAMPERED}: the answer came from another issuer")
        if params.get("error"):
            error = _error_code(params.get("error"))
            if error == "access_denied":
                raise LoginFailed(f"the login was cancelled at {PROVIDER} (access_denied)")
            raise LoginFailed(f"{PROVIDER} refused the login ({error})")
        code = params.get("code")
        if not isinstance(code, str) or not code:
            raise LoginFailed(f"{TAMPERED}: no authorization code")

        token = self._fetch_token(metadata, code, code_verifier, redirect_uri)
        access_token = token.get("access_token")
        id_token = token.get("id_token")
        if not isinstance(access_token, str) or not access_token:
            raise _nonsense(metadata["token_endpoint"], "no access token")
        if not isinstance(id_token, str) or not id_token:
            raise _nonsense(metadata["token_endpoint"], "no ID token")
        claims = self.verify_id_token(id_token, nonce=nonce, access_token=access_token)
        userinfo = self._userinfo(metadata, token)
        if userinfo is None:
            raise LoginFailed(f"{PROVIDER} refused to share your profile")
        if userinfo.get("sub") != claims["sub"]:
            raise LoginFailed(f"{TAMPERED}: the profile is someone else's")
        person = self._person(claims, userinfo, metadata["userinfo_endpoint"])
        return person, self._tokens(token, claims["sub"])

    def _fetch_token(
        self, metadata: dict[str, Any], code: str, code_verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Exchange the code at the token endpoint (with the PKCE verifier)."""
        url = metadata["token_endpoint"]
        with self._session(metadata) as client:
            try:
                token = client.fetch_token(
                    url,
                    grant_type="authorization_code",
                    code=code,
                    redirect_uri=redirect_uri,
                    code_verifier=code_verifier,
                )
            except requests.HTTPError as error:
                status = error.response.status_code if error.response is not None else "?"
                raise _nonsense(url, f"HTTP {status}") from None
            except requests.RequestException as error:
                raise _unreachable(url, error) from None
            except OAuthError as error:
                code_ = _error_code(error.error)
                if code_ in ("invalid_client", "unauthorized_client"):
                    raise BackendUnavailable(
                        f"{PROVIDER} refused FedoraCloud's client credentials ({code_});"
                        " an administrator must check the OIDC settings"
                    ) from None
                raise LoginFailed(f"{TAMPERED}: the code was refused ({code_})") from None
            except ValueError:
                raise _nonsense(url, "the answer is not a JSON object") from None
        return dict(token)

    def verify_id_token(
        self, id_token: str, nonce: str | None = None, access_token: str | None = None
    ) -> dict[str, Any]:
        """The claims of an ID token whose signature, issuer, audience, expiry and nonce hold.

        Raises LoginFailed naming what is wrong.
        """
        metadata = self.metadata()
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise LoginFailed(f"{TAMPERED}: the ID token is malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise LoginFailed(f"{TAMPERED}: the ID token is not signed")
        allowed = self._algorithms(metadata)
        if alg not in allowed:
            raise LoginFailed(f"{TAMPERED}: the ID token is signed with {alg}, not accepted")

        keys = self.jwks()
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=allowed)
            except InvalidKeyIdError:
                keys = self.jwks(refetch=True)
                decoded = jwt.decode(id_token, keys, algorithms=allowed)
        except InvalidKeyIdError:
            raise LoginFailed(f"{TAMPERED}: the ID token is signed with an unknown key") from None
        except BadSignatureError:
            raise LoginFailed(f"{TAMPERED}: invalid signature") from None
        except (JoseError, ValueError, TypeError, KeyError):
            raise LoginFailed(f"{TAMPERED}: the ID token cannot be verified") from None

        params: dict[str, Any] = {"client_id": self.client_id}
        if nonce is not None:
            params["nonce"] = nonce
        if access_token is not None:
            params["access_token"] = access_token
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
            },
            params=params,
        )
        try:
            claims.validate(leeway=CLOCK_LEEWAY)
        except ExpiredTokenError:
            raise LoginFailed(f"{TAMPERED}: ID token expired") from None
        except MissingClaimError as error:
            raise LoginFailed(f"{TAMPERED}: the ID token has no {error.claim}") from None
        except InvalidClaimError as error:
            raise LoginFailed(f"{TAMPERED}: {self._claim_problem(error.claim)}") from None
        except (JoseError, ValueError, TypeError):
            raise LoginFailed(f"{TAMPERED}: the ID token is invalid") from None
        return dict(claims)

    @staticmethod
    def _claim_problem(claim: str) -> str:
        return {
            "nonce": "wrong nonce",
            "aud": "wrong audience",
            "iss": "wrong issuer",
            "azp": "wrong authorized party",
            "at_hash": "the ID token does not match the access token",
            "iat": "ID token issued in the future (check the clocks)",
            "nbf": "ID token not yet valid (check the clocks)",
        }.get(claim, f"invalid {claim} in the ID token")

    @staticmethod
    def _algorithms(metadata: dict[str, Any]) -> list[str]:
        """The ID token algorithms both sides accept (RS256 when the provider names none)."""
        published = metadata.get("id_token_signing_alg_values_supported")
        if not isinstance(published, list) or not published:
            published = ["RS256"]
        return [alg for alg in ASYMMETRIC_ALGORITHMS if alg in published]

    def _userinfo(self, metadata: dict[str, Any], token: dict[str, Any]) -> dict[str, Any] | None:
        """The userinfo claims for this access token; None if the provider refuses the token."""
        url = metadata["userinfo_endpoint"]
        with self._session(metadata, token=token) as client:
            try:
                response = client.get(url, headers={"Accept": "application/json"})
            except requests.RequestException as error:
                raise _unreachable(url, error) from None
            except OAuthError:
                return None
        if response.status_code in (401, 403):
            return None
        if response.status_code != 200:
            raise _nonsense(url, f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("sub"), str):
            raise _nonsense(url, "the profile is not a JSON object with a sub")
        return data

    def _person(self, id_claims: dict[str, Any], userinfo: dict[str, Any], source: str) -> Person:
        """The person the claims describe; groups from userinfo, else from the ID token."""
        merged = {**id_claims, **userinfo}
        username = _text(merged, "nickname") or _text(merged, "preferred_username") or merged["sub"]
        try:
            check_username(username)
        except InvalidUsername as error:
            raise LoginFailed(
                f"your {PROVIDER} username {username!r} cannot be used here: {error}"
            ) from None
        groups = _groups(userinfo, source)
        if groups is None:
            groups = _groups(id_claims, source) or ()
        return Person(
            username=username,
            display_name=_text(merged, "name"),
            email=_text(merged, "email"),
            memberships=tuple(Membership(group) for group in groups),
        )

    @staticmethod
    def _tokens(token: dict[str, Any], sub: str) -> dict[str, Any]:
        """What to keep of a token response (JSON-serialisable) for ``refresh``."""
        expires_at = token.get("expires_at")
        if not isinstance(expires_at, int):
            expires_in = token.get("expires_in")
            expires_at = int(time.time()) + int(expires_in) if expires_in else None
        return {
            "access_token": token.get("access_token"),
            "refresh_token": token.get("refresh_token"),
            "expires_at": expires_at,
            "token_type": token.get("token_type") or "Bearer",
            "sub": sub,
        }

    # -- later checks -------------------------------------------------------------------------

    def refresh(self, tokens: dict[str, Any]) -> tuple[Person, dict[str, Any]] | None:
        """Re-read the person (and groups) with the kept tokens, refreshing them if expired.

        None if the provider refuses (the session must end); BackendUnavailable if it cannot
        be reached.
        """
        access_token = tokens.get("access_token") if isinstance(tokens, dict) else None
        sub = tokens.get("sub") if isinstance(tokens, dict) else None
        if not isinstance(access_token, str) or not access_token or not isinstance(sub, str):
            return None
        metadata = self.metadata()
        token: dict[str, Any] = {
            "access_token": access_token,
            "token_type": tokens.get("token_type") or "Bearer",
            "refresh_token": tokens.get("refresh_token"),
            "expires_at": tokens.get("expires_at"),
        }
        refreshed: dict[str, Any] | None = None
        expires_at = token["expires_at"]
        if isinstance(expires_at, int | float) and expires_at - TOKEN_LEEWAY < time.time():
            refreshed = self._refresh_token(metadata, token)
            if refreshed is None:
                return None
            token = refreshed
        userinfo = self._userinfo(metadata, token)
        if userinfo is None and refreshed is None:
            refreshed = self._refresh_token(metadata, token)
            if refreshed is None:
                return None
            token = refreshed
            userinfo = self._userinfo(metadata, token)
        if userinfo is None or userinfo.get("sub") != sub:
            return None
        id_claims: dict[str, Any] = {"sub": sub}
        new_id_token = (refreshed or {}).get("id_token")
        if isinstance(new_id_token, str) and new_id_token:
            try:
                id_claims = self.verify_id_token(new_id_token, access_token=token["access_token"])
            except BackendUnavailable:
                raise
            except LoginFailed:
                return None
            if id_claims.get("sub") != sub:
                return None
        person = self._person(id_claims, userinfo, metadata["userinfo_endpoint"])
        return person, self._tokens(token, sub)

    def _refresh_token(
        self, metadata: dict[str, Any], token: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A new token from the refresh token; None if there is none or it is refused."""
        refresh_token = token.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            return None
        url = metadata["token_endpoint"]
        with self._session(metadata) as client:
            try:
                new = client.refresh_token(url, refresh_token=refresh_token)
            except requests.HTTPError as error:
                status = error.response.status_code if error.response is not None else "?"
                raise _nonsense(url, f"HTTP {status}") from None
            except requests.RequestException as error:
                raise _unreachable(url, error) from None
            except OAuthError:
                return None
            except ValueError:
                raise _nonsense(url, "the answer is not a JSON object") from None
        new = dict(new)
        if not isinstance(new.get("access_token"), str) or not new["access_token"]:
            raise _nonsense(url, "no access token")
        return new

    # -- the parts of the password backends' protocol that apply ------------------------------

    def memberships(self, username: str) -> tuple[Membership, ...] | None:
        """Unknown: OIDC can only re-read someone's groups with their tokens (``refresh``)."""
        return None

    def group_members(self, group: str) -> list[Person]:
        """Nobody: OIDC cannot list a group's members (FASJSON would need Kerberos)."""
        return []
