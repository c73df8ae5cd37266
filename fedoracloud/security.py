"""The one security policy: who is asking (session or API token) and what they may do where.

A permission on an object is decided by the roles granted on the pools above it
(docs/architecture.md §3).  Whoever cannot view an object gets a 404 for it, never a 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.httpexceptions import HTTPUnauthorized
from pyramid.request import RequestLocalCache
from pyramid.security import Allowed, Denied
from pyramid.session import JSONSerializer, SignedCookieSessionFactory
from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import joinedload

from .auth import BackendUnavailable
from .models import ApiToken, Pool, RoleGrant, User
from .models.meta import utcnow
from .models.user import API_TOKEN_PREFIX, hash_token
from .permissions import (
    HELD_ANYWHERE,
    STORAGE_ROLE,
    TASK_CANCEL_NEEDS,
    Permission,
    Role,
    at_least,
    role_allows,
    strongest,
)
from .resources import (
    OwnedContext,
    StoragePoolContext,
    SuperAdminContext,
    TaskContext,
    VmRequestContext,
)
from .services.access import AccessService, judge
from .services.context import ServiceContext
from .services.throttle import Throttled, ThrottleService, count_failure
from .settings import ConfigError


@dataclass
class Identity:
    """The person behind a request, with the grants that reach them."""

    user: User
    is_super_admin: bool
    has_access: bool = True
    why: str = ""
    via_token: bool = False
    groups: frozenset[str] = frozenset()
    #: (pool path, role) for every grant to the user or one of their groups
    grants: list[tuple[str, Role]] = field(default_factory=list)

    def role_at(self, pool_path: str) -> Role | None:
        """The strongest role reaching a pool with this materialized path."""
        if self.is_super_admin:
            return Role.SUPER_ADMIN
        return strongest([role for path, role in self.grants if pool_path.startswith(path)])

    def visible_pools(self) -> ColumnElement[bool]:
        """A SQL condition on Pool: the pools some grant reaches (all of them for admins)."""
        if self.is_super_admin:
            return true()
        if not self.grants:
            return false()
        return or_(*(Pool.path.startswith(path, autoescape=True) for path, _ in self.grants))


class SecurityPolicy:
    """Pyramid 2 security policy for FedoraCloud."""

    def __init__(self) -> None:
        self.identity_cache = RequestLocalCache(self.load_identity)

    def load_identity(self, request: Any) -> Identity | None:
        """Who is asking, from their API token or cookie session, with the grants that
        reach them: two statements (the token or session with its user and memberships,
        then the grants) unless the cached memberships are due for a refresh."""
        settings = request.fc_settings
        # built here, not found: the request's ServiceContext needs the identity being loaded
        access = AccessService(
            ServiceContext(request.dbsession, settings, None, request.client_addr or "")
        )
        backend = request.registry["auth_backend"]
        token = bearer_token(request)
        if token is not None:
            # a call that names a token stands or falls by it, never by the cookie it carries
            user, via_token = self._user_from_token(request, token), True
            if user is None:
                _count_bad_token(request)
                return None
            if not _fresh(user.memberships_checked_at, settings.membership_ttl) and (
                settings.auth_backend != "oidc"
            ):
                memberships = _read_memberships(backend, user.username)
                if memberships is not None:
                    access.sync_memberships(user, memberships)
        else:
            via_token = False
            sid = request.session.get("sid")
            login = access.session_for(sid) if isinstance(sid, str) else None
            if login is None:
                return None
            try:
                if not access.refresh_memberships(login, backend):
                    login.revoked_at = utcnow()
                    return None
            except BackendUnavailable:
                # keep the cached memberships; ask the provider again in a minute, not on
                # every request while it is down
                login.memberships_checked_at = utcnow() - timedelta(
                    seconds=max(settings.membership_ttl - 60, 0)
                )
            if not _fresh(login.last_seen_at, 60):
                login.last_seen_at = utcnow()
            user = login.user
        if not user.is_active:
            return None
        groups = frozenset(m.group_name for m in user.memberships if m.status == "approved")
        rows = request.dbsession.execute(
            select(Pool.path, RoleGrant.role, RoleGrant.user_id)
            .join(Pool, Pool.id == RoleGrant.pool_id)
            .where(
                or_(
                    RoleGrant.user_id == user.id,
                    RoleGrant.group_name.in_(groups) if groups else false(),
                )
            )
        ).all()
        # the gate's "super admin by grant" is the user's own super_admin grant, if any
        super_grant = any(
            role == Role.SUPER_ADMIN.value and user_id == user.id for _, role, user_id in rows
        )
        gate = judge(user, user.memberships, super_grant, settings)
        return Identity(
            user=user,
            is_super_admin=gate.is_super_admin,
            has_access=gate.has_access,
            why=gate.why,
            via_token=via_token,
            groups=groups,
            grants=[(path, Role(role)) for path, role, _ in rows] if gate.has_access else [],
        )

    def _user_from_token(self, request: Any, token: str) -> User | None:
        if not token.startswith(API_TOKEN_PREFIX):
            return None
        row = (
            request.dbsession.scalars(
                select(ApiToken)
                .where(ApiToken.token_hash == hash_token(token))
                .options(joinedload(ApiToken.user).joinedload(User.memberships))
            )
            .unique()
            .first()
        )
        now = utcnow()
        if row is None or row.revoked_at is not None or _expired(row.expires_at, now):
            return None
        # noted once a minute, not on every call: an UPDATE of the same row per call would
        # serialize a script's parallel calls on its lock
        if not _fresh(row.last_used_at, 60):
            row.last_used_at = now
        return row.user

    def identity(self, request: Any) -> Identity | None:
        return self.identity_cache.get_or_create(request)

    def authenticated_userid(self, request: Any) -> int | None:
        identity = self.identity(request)
        return identity.user.id if identity else None

    def permits(self, request: Any, context: Any, permission: str) -> Allowed | Denied:
        """Every authorization decision of FedoraCloud: may the person asking do
        ``permission`` on ``context`` (what a route factory loaded)?  A view declares the
        permission it needs; the forbidden view turns a refusal into a 404 when VIEW is
        refused too, so whoever may not see an object never learns it exists."""
        identity = self.identity(request)
        if identity is None:
            return Denied("not logged in")
        if not identity.has_access:
            return Denied(f"no access: {identity.why}")
        if isinstance(context, OwnedContext):
            if context.owner_id == identity.user.id:
                return Allowed("their own")
            return Denied("it belongs to someone else")
        if identity.is_super_admin:
            return Allowed("super admin")
        if isinstance(context, SuperAdminContext):
            return Denied("only super admins see it")
        if isinstance(context, TaskContext):
            return _task_permits(identity, context, permission)
        if isinstance(context, StoragePoolContext):
            role = strongest(identity.role_at(p.path) for p in context.storage_pool.hardware_pools)
            if not at_least(role, STORAGE_ROLE):
                return Denied("storage pools are for the admins of the hardware pools using them")
            return _role_permits(role, permission, "a hardware pool using it")
        if isinstance(context, VmRequestContext):
            role = identity.role_at(context.pool_path)
            mine = context.vm_request.user_id == identity.user.id
            if not mine and not role_allows(role, Permission.VM_CREATE):
                return Denied("a VM request is for its requester and those who decide it")
            return _role_permits(role, permission, context.pool_path)
        pool_path = getattr(context, "pool_path", None)
        if pool_path is None:
            return _site_permits(identity, permission)
        return _role_permits(identity.role_at(pool_path), permission, pool_path)

    def remember(self, request: Any, session_token: str, **kw: Any) -> list[tuple[str, str]]:
        """Start a fresh cookie session pointing at a login session row."""
        request.session.invalidate()
        request.session["sid"] = session_token
        self.identity_cache.clear(request)
        return []

    def forget(self, request: Any, **kw: Any) -> list[tuple[str, str]]:
        """End the login session everywhere and drop the cookie session."""
        token = request.session.get("sid")
        if isinstance(token, str):
            AccessService(
                ServiceContext(
                    request.dbsession, request.fc_settings, None, request.client_addr or ""
                )
            ).end_session(token)
        request.session.invalidate()
        self.identity_cache.clear(request)
        return []


def _role_permits(role: Role | None, permission: str, where: str) -> Allowed | Denied:
    if role_allows(role, permission):
        return Allowed(f"{role} on {where}")
    return Denied(f"no role with {permission} reaches {where}")


def _site_permits(identity: Identity, permission: str) -> Allowed | Denied:
    """Site-level contexts: lists are filtered in SQL, so anyone let in views them; a few
    permissions come with a permission held on some pool; the rest are for super admins."""
    if permission == Permission.VIEW:
        return Allowed("lists show only what the user may view")
    needs = HELD_ANYWHERE.get(permission)
    if needs is not None and any(role_allows(role, needs) for _path, role in identity.grants):
        return Allowed(f"{needs} in some pool")
    return Denied(f"{permission} needs a super admin")


def _task_permits(identity: Identity, context: TaskContext, permission: str) -> Allowed | Denied:
    """Whoever asked for a task may see and cancel it; anyone else as the task's target
    allows (cancelling needs what TASK_CANCEL_NEEDS names); a site-level task is theirs
    and the super admins' alone."""
    if context.task.user_id == identity.user.id:
        return Allowed("their own task")
    if context.pool is None:
        return Denied("a site-level task is for super admins and whoever asked for it")
    needs = permission
    if permission == Permission.TASK_CANCEL:
        cancel = TASK_CANCEL_NEEDS.get(context.task.target_type)
        if cancel is None:
            return Denied(f"a {context.task.target_type} task is canceled by its owner")
        needs = cancel
    return _role_permits(identity.role_at(context.pool.path), needs, context.pool.path)


def _fresh(when: datetime | None, seconds: int) -> bool:
    return when is not None and utcnow() - when < timedelta(seconds=seconds)


def _read_memberships(backend: Any, username: str) -> Any:
    try:
        return backend.memberships(username)
    except BackendUnavailable:
        return None


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def bearer_token(request: Any) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header ("" if it names none), or None
    when the request sends no bearer token at all."""
    scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class InvalidBearerToken(HTTPUnauthorized):
    """A call named an API token that does not authenticate anyone: it is answered 401,
    whatever cookie it also carries."""


def _count_bad_token(request: Any) -> None:
    """A bad API token counts against its address; once the address is throttled its
    calls are answered 429 (``request.auth_throttled``) and no longer counted."""
    try:
        # built here, not found: the request's ServiceContext needs the identity being loaded
        ThrottleService(
            ServiceContext(request.dbsession, request.fc_settings, None, request.client_addr or "")
        ).check()
    except Throttled as exc:
        request.auth_throttled = exc
        return
    count_failure(request, "api_token")


def _csrf_applies(request: Any) -> bool:
    """CSRF protects cookie sessions: it is skipped only for a call that an API token
    really authenticated (such a call has no cookie to ride); a call with a bad token is
    refused before it could fall back on the cookie."""
    if bearer_token(request) is None:
        return True
    identity = request.identity
    if identity is None or not identity.via_token:
        raise InvalidBearerToken("the API token does not authenticate anyone")
    return False


def content_security_policy(websocket_url: str) -> str:
    """The pages' Content-Security-Policy: scripts, styles and everything else from this
    site only (inline styles allowed: PatternFly's style attributes and the scripts'
    own), no frames of these pages, forms posting only here; the console's WebSocket may
    also go to the console proxy's own origin when it is configured apart."""
    connect = ["'self'"]
    url = urlsplit(websocket_url)
    if url.scheme in ("ws", "wss") and url.netloc:
        connect.append(f"{url.scheme}://{url.netloc}")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def public_url(settings: Any) -> dict[str, str]:
    """The environ keys that make every absolute URL (``url`` fields, redirects, the OIDC
    redirect URI, the enrollment command) use ``fedoracloud.public_url`` instead of the
    request's Host header; none when the setting is empty (URLs follow the request)."""
    raw = str(settings.extra.get("fedoracloud.public_url", "") or "").strip()
    if not raw:
        return {}
    url = urlsplit(raw)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ConfigError(
            f"setting fedoracloud.public_url: expected http(s)://HOST[:PORT][/PATH], got {raw!r}"
        )
    default_port = 443 if url.scheme == "https" else 80
    return {
        "wsgi.url_scheme": url.scheme,
        "HTTP_HOST": url.netloc,
        "SERVER_NAME": url.hostname,
        "SERVER_PORT": str(url.port or default_port),
        "SCRIPT_NAME": url.path.rstrip("/"),
    }


def security_headers_tween_factory(handler: Any, registry: Any) -> Any:
    """A tween that pins the site's public URL (the Host header is the client's to
    choose), and gives every answer the browser protections (CSP, no framing, no MIME
    sniffing, no cross-site Referer), and the API's answers ``Cache-Control: no-store``
    unless a view chose otherwise: they are someone's data."""
    settings = registry["fc_settings"]
    pinned = public_url(settings)
    headers = {
        "Content-Security-Policy": content_security_policy(settings.console.websocket_url),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    def tween(request: Any) -> Any:
        environ = request.environ
        given = {key: environ[key] for key in pinned if key in environ}
        environ.update(pinned)
        try:
            response = handler(request)
        finally:  # the server and its log see the request as it came
            for key in pinned:
                environ.pop(key, None)
            environ.update(given)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/") and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    return tween


def includeme(config: Any) -> None:
    """Sessions, CSRF, the security policy and a default permission that fails closed."""
    settings = config.registry["fc_settings"]
    config.set_session_factory(
        SignedCookieSessionFactory(
            settings.session_secret,
            cookie_name="fedoracloud",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="Lax",
            max_age=settings.session_max_age,
            timeout=settings.session_max_age,
            reissue_time=300,
            serializer=JSONSerializer(),
        )
    )
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True, callback=_csrf_applies)
    config.set_security_policy(SecurityPolicy())
    config.set_default_permission(Permission.VIEW)
    config.add_tween("fedoracloud.security.security_headers_tween_factory")
