"""Role grants: who holds which role on which pool, granting and revoking them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from zope.interface import Interface

from ..models import GroupMembership, Pool, RoleGrant, User
from ..permissions import Role, grantable
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .context import Service, ServiceContext

GROUP_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_group_name(name: str) -> str:
    """A valid group name or InvalidInput."""
    name = (name or "").strip()
    if not GROUP_PATTERN.fullmatch(name):
        raise InvalidInput(
            "a group name has 1 to 64 lowercase letters, digits, '.', '_' or '-'",
            {"field": "group"},
        )
    return name


def role_at_most(role: str, ceiling: Role | None) -> Role:
    """The role if it exists and does not exceed the ceiling; InvalidInput otherwise."""
    try:
        wanted = Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role[:32]!r}; one of " + ", ".join(r.value for r in Role),
            {"field": "role"},
        ) from None
    if wanted not in grantable(ceiling):
        raise InvalidInput(
            f"you cannot grant {wanted}: it is above your own role here", {"field": "role"}
        )
    return wanted


class IGrantService(Interface):
    """Marker for the grant service."""


@dataclass
class GrantRow:
    """A grant as a pool's permission page shows it."""

    grant: RoleGrant
    source: Pool
    inherited: bool


def grant_summary(grant: RoleGrant) -> dict[str, Any]:
    return {
        "pool": grant.pool_id,
        "user": grant.user_id,
        "group": grant.group_name,
        "role": grant.role,
    }


class GrantService(Service):
    """Reading and changing role grants."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        self.access_group = ctx.settings.access_group

    def for_pool(self, pool: Pool) -> list[GrantRow]:
        """Grants on the pool and on every ancestor (inherited), nearest first."""
        ids = pool.ancestor_ids
        rows = self.dbsession.execute(
            select(RoleGrant, Pool)
            .join(Pool, Pool.id == RoleGrant.pool_id)
            .where(RoleGrant.pool_id.in_(ids))
            .order_by(Pool.depth.desc(), RoleGrant.id)
        ).all()
        return [GrantRow(g, p, p.id != pool.id) for g, p in rows]

    def get(self, grant_id: int) -> RoleGrant:
        grant = self.dbsession.get(RoleGrant, grant_id)
        if grant is None:
            raise NotFound(f"no grant {grant_id}")
        return grant

    def grantee(self, username: str) -> User:
        """The person a grant names by username, if a role may be granted to them."""
        user = self.dbsession.scalars(select(User).where(User.username == username)).first()
        if user is None or not self.is_grantable(user):
            raise NotFound(f"no grantable person named {username[:64]!r}", {"field": "user"})
        return user

    def is_grantable(self, user: User) -> bool:
        """Approved members and administrators of the access group, or let in locally."""
        if user.local_access:
            return True
        return (
            self.dbsession.scalar(
                select(GroupMembership.id).where(
                    GroupMembership.user_id == user.id,
                    GroupMembership.group_name == self.access_group,
                    GroupMembership.status == "approved",
                )
            )
            is not None
        )

    def grantable_people(self, prefix: str, limit: int = 20) -> list[User]:
        """People the grant dialog may offer, whose username or name starts with a prefix."""
        prefix = (prefix or "").strip().lower()
        if len(prefix) > 64:
            raise InvalidInput("a search has at most 64 characters", {"field": "q"})
        members = select(GroupMembership.user_id).where(
            GroupMembership.group_name == self.access_group,
            GroupMembership.status == "approved",
        )
        query = select(User).where(
            User.is_active.is_(True), or_(User.id.in_(members), User.local_access.is_(True))
        )
        if prefix:
            query = query.where(
                or_(
                    User.username.startswith(prefix, autoescape=True),
                    func.lower(User.display_name).startswith(prefix, autoescape=True),
                )
            )
        return list(self.dbsession.scalars(query.order_by(User.username).limit(limit)))

    def known_groups(self, prefix: str, limit: int = 20) -> list[str]:
        """Group names seen in memberships, for group grants."""
        prefix = (prefix or "").strip().lower()
        if len(prefix) > 64:
            raise InvalidInput("a search has at most 64 characters", {"field": "q"})
        query = select(GroupMembership.group_name).distinct()
        if prefix:
            query = query.where(GroupMembership.group_name.startswith(prefix, autoescape=True))
        return list(self.dbsession.scalars(query.order_by(GroupMembership.group_name).limit(limit)))

    def grant(
        self,
        pool: Pool,
        role: str,
        *,
        granter: Any,
        user: User | None = None,
        group: str | None = None,
    ) -> RoleGrant:
        """Give a user or a group a role on a pool (replacing the role they had there)."""
        if (user is None) == (group is None):
            raise InvalidInput("grant to either a user or a group", {"field": "user"})
        wanted = role_at_most(role, granter.role_at(pool.path))
        if user is not None:
            if user.id == granter.user.id:
                raise InvalidInput("you cannot change your own grants", {"field": "user"})
            if not self.is_grantable(user):
                raise InvalidInput(
                    f"{user.username} is not an approved member of {self.access_group}",
                    {"field": "user"},
                )
            where = RoleGrant.user_id == user.id
        else:
            group = check_group_name(group or "")
            where = RoleGrant.group_name == group
        grant = self.dbsession.scalars(
            select(RoleGrant).where(RoleGrant.pool_id == pool.id, where)
        ).first()
        before = grant_summary(grant) if grant else None
        if grant is None:
            grant = RoleGrant(
                pool_id=pool.id,
                user_id=user.id if user else None,
                group_name=group,
                role=wanted.value,
                granted_by_id=granter.user.id,
            )
            self.dbsession.add(grant)
        else:
            self._check_not_above(grant, granter)
            if grant.role == Role.SUPER_ADMIN and wanted is not Role.SUPER_ADMIN:
                self._check_not_last_super_admin(grant)
            grant.role = wanted.value
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "grant.add",
            "pool",
            pool.id,
            pool_id=pool.id,
            before=before,
            after=grant_summary(grant),
            remote_addr=self.remote_addr,
        )
        return grant

    def revoke(self, grant: RoleGrant, *, revoker: Any) -> None:
        """Take a grant away."""
        if grant.user_id is not None and grant.user_id == revoker.user.id:
            raise InvalidInput("you cannot change your own grants")
        self._check_not_above(grant, revoker)
        if grant.role == Role.SUPER_ADMIN:
            self._check_not_last_super_admin(grant)
        record(
            self.dbsession,
            self.actor,
            "grant.revoke",
            "pool",
            grant.pool_id,
            pool_id=grant.pool_id,
            before=grant_summary(grant),
            remote_addr=self.remote_addr,
        )
        self.dbsession.delete(grant)
        self.dbsession.flush()

    def _check_not_above(self, grant: RoleGrant, actor: Any) -> None:
        pool = self.dbsession.get(Pool, grant.pool_id)
        mine = actor.role_at(pool.path) if pool is not None else None
        if Role(grant.role) not in grantable(mine):
            raise InvalidInput(f"you cannot change a {grant.role} grant: it is above your role")

    def _check_not_last_super_admin(self, grant: RoleGrant) -> None:
        """Someone must stay super admin: another grant, the ini's list, or the admin group."""
        others = self.dbsession.scalar(
            select(func.count())
            .select_from(RoleGrant)
            .where(RoleGrant.role == Role.SUPER_ADMIN.value, RoleGrant.id != grant.id)
        )
        if others or self.settings.admins:
            return
        group = self.settings.admin_group or self.settings.access_group
        admins = select(GroupMembership.id).where(
            GroupMembership.group_name == group, GroupMembership.status == "approved"
        )
        if not self.settings.admin_group:
            admins = admins.where(GroupMembership.role_type == "administrator")
        if self.dbsession.scalar(admins.limit(1)) is None:
            raise Conflict("this is the last super admin; make someone else super admin first")
