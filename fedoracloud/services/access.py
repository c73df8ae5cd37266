"""Who gets in: logins, their sessions, the sysadmin-cloud gate and access requests.

The seed: "users in that list can only be approved or administrator members from the
sysadmin-cloud group".  Only approved members (any role) of the access group get in; the
group's administrators — or, when ``fedoracloud.admin_group`` is set, the approved members
of that group (OIDC reports no roles) — are super admins.  Anyone else may ask; an admin's
local approval is an explicit, audited override that can be taken back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload
from zope.interface import Interface

from ..auth import Membership, Person
from ..models import AccessRequest, GroupMembership, LoginSession, RoleGrant, User
from ..models.meta import utcnow
from ..models.user import RequestState, hash_token
from ..permissions import Role
from ..settings import Settings
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .context import Service, ServiceContext
from .grants import GROUP_PATTERN, GrantService, role_at_most

REASON_MAX = 2000


def check_reason(reason: str, required: bool = True) -> str:
    """A reason text of sane length."""
    reason = (reason or "").strip()
    if required and not reason:
        raise InvalidInput("please give a reason", {"field": "reason"})
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"a reason has at most {REASON_MAX} characters", {"field": "reason"})
    return reason


@dataclass(frozen=True)
class Gate:
    """The gate's verdict for one person."""

    has_access: bool
    is_super_admin: bool
    why: str


def judge(
    user: User,
    memberships: Iterable[GroupMembership | Membership],
    super_grant: bool,
    settings: Settings,
) -> Gate:
    """Apply the gate to someone's memberships."""
    group = settings.access_group
    approved = {
        (m.group_name if isinstance(m, GroupMembership) else m.group, m.role_type)
        for m in memberships
        if m.status == "approved"
    }
    member = any(g == group for g, _ in approved)
    if settings.admin_group:
        admin = any(g == settings.admin_group for g, _ in approved)
    else:
        admin = (group, "administrator") in approved
    if user.username in settings.admins:
        return Gate(True, True, "listed in fedoracloud.admins")
    if admin:
        return Gate(True, True, "administrator")
    if member:
        return Gate(True, super_grant, f"approved member of {group}")
    if user.local_access:
        return Gate(True, super_grant, "let in by an administrator")
    return Gate(False, False, f"not an approved member of {group}")


class IAccessService(Interface):
    """Marker for pyramid-services: ``request.find_service(IAccessService)``."""


class AccessService(Service):
    """Logins, sessions, memberships and access requests."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        self.remote_addr = ctx.remote_addr[:45]

    # -- people and memberships ------------------------------------------------------------

    def sync_person(self, person: Person) -> User:
        """Create or update the user and replace their cached memberships."""
        user = self.dbsession.scalars(select(User).where(User.username == person.username)).first()
        if user is None:
            user = User(username=person.username)
            self.dbsession.add(user)
        if person.display_name:
            user.display_name = person.display_name[:255]
        if person.email:
            user.email = person.email[:255]
        self.dbsession.flush()
        self.sync_memberships(user, person.memberships)
        return user

    def sync_memberships(self, user: User, memberships: Iterable[Membership]) -> None:
        """Make the cached memberships exactly what the identity provider said."""
        now = utcnow()
        wanted = {}
        for m in memberships:
            if GROUP_PATTERN.fullmatch(m.group):
                wanted[m.group] = m
        current = {m.group_name: m for m in user.memberships}
        for name, gone in current.items():
            if name not in wanted:
                user.memberships.remove(gone)
        for name, m in wanted.items():
            row = current.get(name) or GroupMembership(group_name=name)
            if row not in user.memberships:
                user.memberships.append(row)
            row.role_type = (
                m.role_type if m.role_type in ("user", "sponsor", "administrator") else "user"
            )
            row.status = m.status if m.status in ("approved", "unapproved") else "unapproved"
            row.checked_at = now
        user.memberships_checked_at = now
        self.dbsession.flush()

    def sync_directory(self, backend: Any) -> int:
        """Record the access (and admin) group's members as the backend lists them, so the
        grant dialog can offer people who have not logged in yet; returns how many."""
        seen = 0
        for group in filter(None, {self.settings.access_group, self.settings.admin_group}):
            listed = {p.username: p for p in backend.group_members(group)}
            rows = self.dbsession.execute(
                select(User, GroupMembership)
                .join(GroupMembership, GroupMembership.user_id == User.id)
                .where(GroupMembership.group_name == group)
            ).all()
            for gone, membership in rows:
                if gone.username not in listed:
                    gone.memberships.remove(membership)
            for person in listed.values():
                member = self.dbsession.scalars(
                    select(User).where(User.username == person.username)
                ).first() or User(username=person.username)
                self.dbsession.add(member)
                if person.display_name:
                    member.display_name = person.display_name[:255]
                mine = [m for m in person.memberships if m.group == group][:1]
                row = next((m for m in member.memberships if m.group_name == group), None)
                if row is None:
                    row = GroupMembership(group_name=group)
                    member.memberships.append(row)
                if mine:
                    row.role_type = mine[0].role_type
                    row.status = mine[0].status
                row.checked_at = utcnow()
                seen += 1
        self.dbsession.flush()
        return seen

    def has_super_grant(self, user: User) -> bool:
        return (
            self.dbsession.scalar(
                select(RoleGrant.id)
                .where(RoleGrant.user_id == user.id, RoleGrant.role == Role.SUPER_ADMIN.value)
                .limit(1)
            )
            is not None
        )

    def gate(self, user: User) -> Gate:
        """The gate's verdict from the cached memberships."""
        return judge(user, user.memberships, self.has_super_grant(user), self.settings)

    # -- sessions --------------------------------------------------------------------------

    def start_session(
        self,
        person: Person,
        backend: str,
        user_agent: str = "",
        provider_tokens: dict[str, Any] | None = None,
    ) -> tuple[User, str]:
        """Record a successful login; returns the user and the new session's secret."""
        user = self.sync_person(person)
        if not user.is_active:
            raise InvalidInput("this account is disabled")
        now = utcnow()
        user.last_login_at = now
        token = secrets.token_urlsafe(32)
        self.dbsession.add(
            LoginSession(
                token_hash=hash_token(token),
                user_id=user.id,
                backend=backend,
                expires_at=now + timedelta(seconds=self.settings.session_max_age),
                last_seen_at=now,
                memberships_checked_at=now,
                remote_addr=self.remote_addr,
                user_agent=user_agent[:255],
                provider_tokens=provider_tokens,
            )
        )
        gate = self.gate(user)
        record(
            self.dbsession,
            _Actor(user),
            "user.login",
            "user",
            user.id,
            after={"backend": backend, "access": gate.has_access, "why": gate.why},
            remote_addr=self.remote_addr,
        )
        self.dbsession.flush()
        return user, token

    def session_for(self, token: str) -> LoginSession | None:
        """The live session with this secret, if any."""
        row = (
            self.dbsession.scalars(
                select(LoginSession)
                .where(LoginSession.token_hash == hash_token(token))
                .options(joinedload(LoginSession.user).joinedload(User.memberships))
            )
            .unique()
            .first()
        )
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            return None
        return row

    def end_session(self, token: str) -> None:
        """Log out: the session is revoked everywhere."""
        row = self.session_for(token)
        if row is not None:
            row.revoked_at = utcnow()
            record(
                self.dbsession,
                _Actor(row.user),
                "user.logout",
                "user",
                row.user_id,
                remote_addr=self.remote_addr,
            )

    def refresh_memberships(self, login: LoginSession, backend: Any) -> bool:
        """Re-read the person's groups if older than the TTL; False if the session must end."""
        now = utcnow()
        checked = login.memberships_checked_at
        if checked is not None and now - checked < timedelta(seconds=self.settings.membership_ttl):
            return True
        user = login.user
        if login.backend == "oidc":
            result = backend.refresh(login.provider_tokens or {})
            if result is None:
                return False
            person, tokens = result
            login.provider_tokens = tokens
            memberships = person.memberships
        else:
            read = backend.memberships(user.username)
            if read is None:
                return False
            memberships = read
        self.sync_memberships(user, memberships)
        login.memberships_checked_at = now
        return True

    # -- access requests -------------------------------------------------------------------

    def pending_request(self, user: User) -> AccessRequest | None:
        return self.dbsession.scalars(
            select(AccessRequest).where(
                AccessRequest.user_id == user.id, AccessRequest.state == RequestState.PENDING.value
            )
        ).first()

    def latest_request(self, user: User) -> AccessRequest | None:
        return self.dbsession.scalars(
            select(AccessRequest)
            .where(AccessRequest.user_id == user.id)
            .order_by(AccessRequest.id.desc())
            .limit(1)
        ).first()

    def request_access(self, user: User, reason: str) -> AccessRequest:
        """Ask to be let in; one pending request per person."""
        reason = check_reason(reason)
        if self.gate(user).has_access:
            raise Conflict("you already have access")
        if self.pending_request(user) is not None:
            raise Conflict("your request is already waiting for an administrator")
        req = AccessRequest(user_id=user.id, reason=reason)
        self.dbsession.add(req)
        self.dbsession.flush()
        record(
            self.dbsession,
            _Actor(user),
            "access.request",
            "user",
            user.id,
            after={"request": req.id, "reason": reason},
            remote_addr=self.remote_addr,
        )
        return req

    def pending_requests(self) -> list[AccessRequest]:
        return list(
            self.dbsession.scalars(
                select(AccessRequest)
                .where(AccessRequest.state == RequestState.PENDING.value)
                .order_by(AccessRequest.created_at)
            )
        )

    def requesters(self, requests: list[AccessRequest]) -> dict[int, User]:
        """The people behind some access requests, by id, in one query."""
        if not requests:
            return {}
        ids = [r.user_id for r in requests]
        return {u.id: u for u in self.dbsession.scalars(select(User).where(User.id.in_(ids)))}

    def get_request(self, request_id: int) -> AccessRequest:
        req = self.dbsession.get(AccessRequest, request_id)
        if req is None:
            raise NotFound(f"no access request {request_id}")
        return req

    def approve(self, req: AccessRequest, pool: Any, role: str, approver: Any) -> AccessRequest:
        """Let the person in, with a first role on a pool."""
        if req.state != RequestState.PENDING.value:
            raise Conflict(f"this request was already {req.state}")
        user = self.dbsession.get(User, req.user_id)
        assert user is not None
        role_at_most(role, approver.role_at(pool.path))  # refuse before changing anything
        user.local_access = True  # the grant is only for people who may get in
        GrantService(self.ctx).grant(pool, role, user=user, granter=approver)
        req.state = RequestState.APPROVED.value
        req.pool_id = pool.id
        req.role = role
        req.decided_by_id = approver.user.id
        req.decided_at = utcnow()
        record(
            self.dbsession,
            self.actor,
            "access.approve",
            "user",
            user.id,
            pool_id=pool.id,
            before={"local_access": False},
            after={"local_access": True, "pool": pool.id, "role": role},
            remote_addr=self.remote_addr,
        )
        return req

    def deny(self, req: AccessRequest, reason: str, approver: Any) -> AccessRequest:
        """Refuse, saying why."""
        reason = check_reason(reason)
        if req.state != RequestState.PENDING.value:
            raise Conflict(f"this request was already {req.state}")
        req.state = RequestState.DENIED.value
        req.decision_reason = reason
        req.decided_by_id = approver.user.id
        req.decided_at = utcnow()
        record(
            self.dbsession,
            self.actor,
            "access.deny",
            "user",
            req.user_id,
            after={"reason": reason},
            remote_addr=self.remote_addr,
        )
        return req

    def set_local_access(self, user: User, allowed: bool) -> None:
        """Grant or take back the local override; taking it back ends their sessions."""
        if user.local_access == allowed:
            return
        before = {"local_access": user.local_access}
        user.local_access = allowed
        if not allowed:
            self.dbsession.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        record(
            self.dbsession,
            self.actor,
            "access.local" if allowed else "access.revoke",
            "user",
            user.id,
            before=before,
            after={"local_access": allowed},
            remote_addr=self.remote_addr,
        )


class _Actor:
    """The actor of events a person causes before they have a request identity."""

    def __init__(self, user: User) -> None:
        self.user = user
