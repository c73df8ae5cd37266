"""A real OpenID provider for the tests: Authlib's authorization server on a loopback socket.

It mimics Fedora Accounts (Ipsilon): the issuer ends with ``/openidc/``, the endpoints are
``Authorization``, ``Token``, ``UserInfo`` and ``Jwks``, and the
``https://id.fedoraproject.org/scope/groups`` scope adds a ``groups`` claim.  The grants are
Authlib's (``AuthorizationCodeGrant`` with ``OpenIDCode`` and PKCE ``CodeChallenge``,
``RefreshTokenGrant``, ``UserInfoEndpoint``); ID tokens are real RS256 JWTs signed with a
key published in the JWKS.

``/Authorization`` has no UI: it approves the configured ``user`` at once and redirects to
the ``redirect_uri`` with the code and state.  Tests steer the next ID token (expired,
signed with another key, unsigned, wrong nonce/audience/issuer), refuse the next login,
change the user and their groups, revoke tokens, rotate the signing key, make an endpoint
answer nonsense, or ``stop()`` the provider to simulate an outage::

    def test_login(oidc_provider):
        backend = OidcBackend(oidc_provider.settings())
        oidc_provider.user.groups = ["sysadmin-cloud"]
        oidc_provider.expire_next_id_token()
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from authlib.common.security import generate_token
from authlib.consts import default_json_headers
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from joserfc.jwk import KeySet, RSAKey
from requests.structures import CaseInsensitiveDict

from fedoracloud.settings import OIDC_SCOPES, Settings

GROUPS_SCOPE = "https://id.fedoraproject.org/scope/groups"
SCOPES = (*OIDC_SCOPES, "offline_access")
CLIENT_ID = "fedoracloud-test"
#: the callback the tests register; nothing listens there, tests read the redirect
REDIRECT_URI = "http://127.0.0.1:9/login/oidc/callback"

_KEYS: dict[str, RSAKey] = {}
_KEYS_LOCK = threading.Lock()


def signing_key(name: str) -> RSAKey:
    """An RS256 key pair, made once per test run per name (2048-bit keys take ~0.1 s)."""
    with _KEYS_LOCK:
        if name not in _KEYS:
            _KEYS[name] = RSAKey.generate_key(
                2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True
            )
        return _KEYS[name]


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- the provider's records ----------------------------------------------------------------


@dataclass
class TestUser:
    """The person the provider logs in; ``groups=None`` means no groups claim at all."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    sub: str = "f1c2e3d4-0001"
    nickname: str | None = "alice"
    preferred_username: str | None = "alice"
    name: str = "Alice Liddell"
    email: str = "alice@fedoraproject.org"
    groups: list[str] | None = field(default_factory=lambda: ["sysadmin-cloud", "packager"])


@dataclass
class _Client(ClientMixin):
    client_id: str
    client_secret: str
    provider: OidcProvider
    client_metadata: dict[str, Any] = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.provider.redirect_uris[0] if self.provider.redirect_uris else ""

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        allowed = self.provider.redirect_uris
        if allowed is None:
            return redirect_uri.startswith(("http://", "https://"))
        return redirect_uri in allowed

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method in self.provider.token_auth_methods
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class _Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    sub: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


@dataclass
class _Token(TokenMixin):
    access_token: str
    refresh_token: str | None
    client: _Client
    scope: str
    sub: str
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> TestUser | None:
        return self.client.provider.user_for(self.sub)

    def get_client(self) -> _Client:
        return self.client


# -- Authlib's server, bound to a plain WSGI request ------------------------------------------


@dataclass
class _HttpRequest:
    method: str
    url: str
    path: str
    headers: CaseInsensitiveDict[str]
    args: dict[str, str]
    form: dict[str, str]
    datalist: dict[str, list[str]]


class _Payload(OAuth2Payload):
    def __init__(self, http: _HttpRequest) -> None:
        self._http = http

    @property
    def data(self) -> dict[str, str]:
        return {**self._http.args, **self._http.form}

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._http.datalist


class _OAuth2Request(OAuth2Request):
    def __init__(self, http: _HttpRequest) -> None:
        super().__init__(http.method, http.url, headers=http.headers)
        self._http = http
        self.payload = _Payload(http)

    @property
    def args(self) -> dict[str, str]:
        return self._http.args

    @property
    def form(self) -> dict[str, str]:
        return self._http.form


class _Server(AuthorizationServer):
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.provider = provider

    def query_client(self, client_id: str) -> _Client | None:
        client = self.provider.client
        return client if client_id == client.client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.provider._save_token(token, request)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return _OAuth2Request(request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(
        self, status: int, body: Any, headers: Iterable[tuple[str, str]]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        if isinstance(body, dict):
            body = json.dumps(body)
        return status, (body or "").encode(), list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    @property
    def provider(self) -> OidcProvider:
        return self.server.provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.provider._save_code(
            _Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=data.get("redirect_uri", ""),
                scope=request.client.get_allowed_scope(data.get("scope")),
                sub=request.user.sub,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
                expires_at=time.time() + 60,
            )
        )

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        found = self.provider.codes.get(code)
        if found is None or found.client_id != client.client_id or found.expires_at < time.time():
            return None
        return found

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> TestUser | None:
        return self.provider.user_for(authorization_code.sub)


class _RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def provider(self) -> OidcProvider:
        return self.server.provider

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        for token in self.provider.tokens.values():
            if token.refresh_token == refresh_token and not token.revoked:
                return token
        return None

    def authenticate_user(self, refresh_token: _Token) -> TestUser | None:
        return self.provider.user_for(refresh_token.sub)

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        refresh_token.revoked = True


class _OpenIDCode(OpenIDCode):
    """Authlib's OpenID extension of the code grant, with the provider's test controls."""

    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider
        self._local = threading.local()

    @property
    def tweaks(self) -> dict[str, Any]:
        return getattr(self._local, "tweaks", {})

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return nonce in self.provider.nonces_seen

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        if self.tweaks.get("tampered") or self.tweaks.get("unknown_key"):
            return signing_key("rogue")
        return self.provider.key

    def get_encode_header(self, client: _Client) -> dict[str, Any]:
        signer = signing_key("rogue") if self.tweaks.get("unknown_key") else self.provider.key
        return {"alg": "RS256", "kid": signer.kid}

    def get_client_algorithm(self, client: _Client) -> str:
        return "RS256"

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.tweaks.get("issuer", self.provider.issuer),
            "aud": self.tweaks.get("audience", [client.client_id]),
            "iat": now,
            "exp": now + 3600,
        }
        if self.tweaks.get("expired"):
            claims.update(iat=now - 4200, exp=now - 600, auth_time=now - 4200)
        return claims

    def get_authorization_code_claims(self, authorization_code: _Code) -> dict[str, Any]:
        claims = super().get_authorization_code_claims(authorization_code)
        if self.tweaks.get("wrong_nonce"):
            claims["nonce"] = "not-the-nonce-" + generate_token(8)
        return claims

    def generate_user_info(self, user: TestUser, scope: str) -> UserInfo:
        return self.provider.claims_for(user, scope, in_id_token=True)

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        self._local.tweaks = self.provider._take_tweaks()
        try:
            if self.tweaks.get("unsigned"):
                return self._unsigned(token, request)
            return str(super().encode_id_token(token, request))
        finally:
            self._local.tweaks = {}

    def _unsigned(self, token: dict[str, Any], request: OAuth2Request) -> str:
        """An ``alg: none`` token, with whatever claims the test forges into it."""
        claims = self.get_compatible_claims(request)
        claims.update(self.get_authorization_code_claims(request.authorization_code))
        claims.update(self.generate_user_info(request.user, token["scope"]))
        claims.update(self.tweaks["unsigned"])
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


class _UserInfo(UserInfoEndpoint):
    def __init__(self, provider: OidcProvider, protector: ResourceProtector) -> None:
        super().__init__(resource_protector=protector)
        self.provider = provider

    def __call__(self, request: OAuth2Request) -> tuple[int, Any, list[tuple[str, str]]]:
        token = self.resource_protector.validate_request(["openid"], request)
        user = token.get_user()
        if user is None:
            return 401, {"error": "invalid_token"}, default_json_headers
        return 200, self.generate_user_info(user, token.get_scope()), default_json_headers

    def generate_user_info(self, user: TestUser, scope: str) -> UserInfo:
        return self.provider.claims_for(user, scope, in_id_token=False)

    def get_issuer(self) -> str:
        return self.provider.issuer


class _BearerValidator(BearerTokenValidator):
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> _Token | None:
        return self.provider.tokens.get(token_string)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # skip HTTPServer's socket.getfqdn(), a reverse DNS lookup that can take seconds
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]
        self.setup_environ()


# -- the provider ---------------------------------------------------------------------------


class OidcProvider:
    """An OpenID provider on 127.0.0.1 (random port), served from a background thread."""

    BASE_PATH = "/openidc/"

    def __init__(
        self,
        client_id: str = CLIENT_ID,
        client_secret: str | None = None,
        user: TestUser | None = None,
    ) -> None:
        self.client = _Client(client_id, client_secret or secrets.token_urlsafe(24), self)
        self.user = user or TestUser()
        #: other people the provider knows (by sub), besides ``user``
        self.users: dict[str, TestUser] = {}
        #: accepted redirect URIs (None: any http(s) URI)
        self.redirect_uris: list[str] | None = None
        #: client authentication methods the token endpoint accepts (and advertises)
        self.token_auth_methods: list[str] = ["client_secret_basic", "client_secret_post"]
        #: put the groups claim in ID tokens / userinfo (when the groups scope is granted)
        self.groups_in_id_token = True
        self.groups_in_userinfo = True
        self.access_token_lifetime = 3600
        self.key = signing_key("main")
        self.old_keys: list[RSAKey] = []
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, _Token] = {}
        self.nonces_seen: set[str] = set()
        #: (method, path) of every request served, for assertions
        self.requests: list[tuple[str, str]] = []
        #: how the client authenticated at the token endpoint, per token issued
        self.token_auth_used: list[str] = []
        #: endpoints (path suffixes, e.g. "Token") that answer an HTML page instead
        self.nonsense: set[str] = set()
        self._tweaks: dict[str, Any] = {}
        self._deny_next: str | None = None
        self._lock = threading.RLock()
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.authorization_server = self._make_authorization_server()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> OidcProvider:
        """Listen on 127.0.0.1 (the same port again after ``stop``, else a free one)."""
        if self._server is not None:
            return self
        server = make_server(
            "127.0.0.1",
            self.port,
            self._wsgi,
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: connections to the port are refused from now on."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """Like Fedora's, with a trailing slash."""
        return f"{self.base_url}{self.BASE_PATH}"

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def client_secret(self) -> str:
        return self.client.client_secret

    def endpoint(self, name: str) -> str:
        return f"{self.issuer}{name}"

    def settings(self, **overrides: Any) -> Settings:
        """FedoraCloud settings that log in through this provider."""
        values: dict[str, Any] = {
            "database_url": "sqlite://",
            "session_secret": "oidc-test-session-secret-0123456789",
            "auth_backend": "oidc",
            "oidc_issuer": self.issuer,
            "oidc_client_id": self.client_id,
            "oidc_client_secret": self.client_secret,
            "secure_cookies": False,
        }
        values.update(overrides)
        return Settings(**values)

    def ini_settings(self) -> dict[str, str]:
        """The same as ini settings (``fedoracloud.oidc.*``), for an app under test."""
        return {
            "fedoracloud.auth.backend": "oidc",
            "fedoracloud.oidc.issuer": self.issuer,
            "fedoracloud.oidc.client_id": self.client_id,
            "fedoracloud.oidc.client_secret": self.client_secret,
        }

    # -- test controls ----------------------------------------------------------------------

    def _tweak(self, **tweaks: Any) -> None:
        with self._lock:
            self._tweaks.update(tweaks)

    def _take_tweaks(self) -> dict[str, Any]:
        with self._lock:
            tweaks, self._tweaks = self._tweaks, {}
            return tweaks

    def expire_next_id_token(self) -> None:
        """The next ID token expired ten minutes ago."""
        self._tweak(expired=True)

    def tamper_next_id_token(self) -> None:
        """The next ID token is signed by another key, under the real key's kid."""
        self._tweak(tampered=True)

    def sign_next_with_unknown_key(self) -> None:
        """The next ID token is signed by a key the JWKS does not publish (its own kid)."""
        self._tweak(unknown_key=True)

    def unsigned_next_id_token(self, **forged_claims: Any) -> None:
        """The next ID token is ``alg: none``, carrying these extra (forged) claims."""
        self._tweak(unsigned=forged_claims)

    def wrong_nonce_next(self) -> None:
        """The next ID token carries another nonce than the one asked for."""
        self._tweak(wrong_nonce=True)

    def wrong_audience_next(self, audience: str = "someone-else") -> None:
        """The next ID token is for another client."""
        self._tweak(audience=[audience])

    def wrong_issuer_next(self, issuer: str = "https://evil.example/openidc/") -> None:
        """The next ID token claims another issuer."""
        self._tweak(issuer=issuer)

    def deny_next(self, error: str = "access_denied") -> None:
        """The next authorization answers this error instead of a code."""
        self._deny_next = error

    def rotate_key(self, name: str = "rotated") -> None:
        """Sign with a new key from now on; the JWKS publishes both."""
        with self._lock:
            self.old_keys.append(self.key)
            self.key = signing_key(name)

    def revoke_tokens(self) -> None:
        """Every access and refresh token issued so far stops working."""
        with self._lock:
            for token in self.tokens.values():
                token.revoked = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far has expired (refresh tokens still work)."""
        with self._lock:
            for token in self.tokens.values():
                token.issued_at -= token.expires_in + 1

    def user_for(self, sub: str) -> TestUser | None:
        if sub == self.user.sub:
            return self.user
        return self.users.get(sub)

    def count(self, suffix: str) -> int:
        """How many requests an endpoint (path suffix) has served."""
        return sum(1 for _, path in self.requests if path.endswith(suffix))

    # -- claims -------------------------------------------------------------------------------

    def claims_for(self, user: TestUser, scope: str, in_id_token: bool) -> UserInfo:
        """The user's claims for a granted scope (Fedora's: nickname, groups, …)."""
        scopes = set((scope or "").split())
        claims: dict[str, Any] = {"sub": user.sub}
        if "profile" in scopes:
            claims["name"] = user.name
            if user.nickname is not None:
                claims["nickname"] = user.nickname
            if user.preferred_username is not None:
                claims["preferred_username"] = user.preferred_username
        if "email" in scopes:
            claims["email"] = user.email
            claims["email_verified"] = True
        wanted = self.groups_in_id_token if in_id_token else self.groups_in_userinfo
        if GROUPS_SCOPE in scopes and user.groups is not None and wanted:
            claims["groups"] = list(user.groups)
        return UserInfo(claims)

    def jwks(self) -> dict[str, Any]:
        keys = KeySet([self.key, *self.old_keys])
        return dict(keys.as_dict(private=False))

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("Authorization"),
            "token_endpoint": self.endpoint("Token"),
            "userinfo_endpoint": self.endpoint("UserInfo"),
            "jwks_uri": self.endpoint("Jwks"),
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": list(self.token_auth_methods),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "name",
                "nickname",
                "preferred_username",
                "email",
                "groups",
            ],
        }

    # -- records the grants keep --------------------------------------------------------------

    def _save_code(self, code: _Code) -> None:
        with self._lock:
            self.codes[code.code] = code
            if code.nonce:
                self.nonces_seen.add(code.nonce)

    def _save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        with self._lock:
            self.token_auth_used.append(str(request.auth_method))
            self.tokens[token["access_token"]] = _Token(
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                client=self.client,
                scope=token.get("scope", ""),
                sub=request.user.sub,
                issued_at=time.time(),
                expires_in=int(token.get("expires_in", self.access_token_lifetime)),
            )

    # -- the HTTP side --------------------------------------------------------------------------

    def _make_authorization_server(self) -> _Server:
        server = _Server(self)
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(42),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: self.access_token_lifetime,
            ),
        )
        server.register_grant(_CodeGrant, [_OpenIDCode(self), CodeChallenge(required=True)])
        server.register_grant(_RefreshGrant)
        protector = ResourceProtector()
        protector.register_token_validator(_BearerValidator(self))
        server.register_endpoint(_UserInfo(self, protector))
        return server

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        http = self._http_request(environ)
        with self._lock:
            self.requests.append((http.method, http.path))
        name = http.path[len(self.BASE_PATH) :] if http.path.startswith(self.BASE_PATH) else ""
        if name in self.nonsense:
            status, body, headers = (
                200,
                b"<html>Maintenance</html>",
                [("Content-Type", "text/html")],
            )
        else:
            status, body, headers = self._dispatch(name, http)
        reason = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized"}
        start_response(f"{status} {reason.get(status, 'Error')}", headers)
        return iter([body])

    def _dispatch(self, name: str, http: _HttpRequest) -> tuple[int, bytes, list[tuple[str, str]]]:
        json_headers = [("Content-Type", "application/json")]
        if name == ".well-known/openid-configuration" and http.method == "GET":
            return 200, json.dumps(self.discovery()).encode(), json_headers
        if name == "Jwks" and http.method == "GET":
            return 200, json.dumps(self.jwks()).encode(), json_headers
        if name == "Authorization" and http.method == "GET":
            return self._authorize(http)
        if name == "Token" and http.method == "POST":
            return self.authorization_server.create_token_response(http)
        if name == "UserInfo" and http.method in ("GET", "POST"):
            return self.authorization_server.create_endpoint_response("userinfo", http)
        return 404, b'{"error": "not_found"}', json_headers

    def _authorize(self, http: _HttpRequest) -> tuple[int, bytes, list[tuple[str, str]]]:
        server = self.authorization_server
        request = server.create_oauth2_request(http)
        try:
            grant = server.get_consent_grant(request, end_user=self.user)
        except OAuth2Error as error:
            return server.handle_error_response(request, error)
        denied, self._deny_next = self._deny_next, None
        if denied and denied != "access_denied":
            redirect = grant.validate_authorization_request()
            refusal = OAuth2Error(error=denied, redirect_uri=redirect)
            refusal.state = request.payload.state
            return server.handle_error_response(request, refusal)
        user = None if denied else self.user
        return server.create_authorization_response(request, grant_user=user, grant=grant)

    def _http_request(self, environ: dict[str, Any]) -> _HttpRequest:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-")] = value
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        body = b""
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        args_list = parse_qs(query, keep_blank_values=True)
        form_list = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        datalist: dict[str, list[str]] = {}
        for source in (args_list, form_list):
            for key, values in source.items():
                datalist.setdefault(key, []).extend(values)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        return _HttpRequest(
            method=method,
            url=url,
            path=path,
            headers=headers,
            args={k: v[0] for k, v in args_list.items()},
            form={k: v[0] for k, v in form_list.items()},
            datalist=datalist,
        )


def unreachable_issuer() -> str:
    """An issuer URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/openidc/"


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    """A running OpenID provider for one test, stopped after it."""
    provider = OidcProvider().start()
    try:
        yield provider
    finally:
        provider.stop()
