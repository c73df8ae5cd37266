"""The account page's facts: who you are, your groups, and your roles pool by pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload
from zope.interface import Interface

from ..models import ApiToken, GroupMembership, Pool, RoleGrant
from .context import Service


@dataclass(frozen=True)
class RoleHere:
    """A role reaching you on a pool (and its whole subtree), and through whom."""

    pool: Pool
    pool_path: str
    role: str
    via: str  # "you" or "group NAME"


@dataclass(frozen=True)
class AccountSummary:
    memberships: list[GroupMembership]
    roles: list[RoleHere]
    active_tokens: int


class IAccountService(Interface):
    """Marker for pyramid-services: ``request.find_service(IAccountService)``."""


class AccountService(Service):
    """Reads (never writes) what the account page shows."""

    def summary(self, identity: Any) -> AccountSummary:
        user = identity.user
        memberships = list(
            self.dbsession.scalars(
                select(GroupMembership)
                .where(GroupMembership.user_id == user.id)
                .order_by(GroupMembership.group_name)
            )
        )
        principals = [RoleGrant.user_id == user.id]
        if identity.groups:
            principals.append(RoleGrant.group_name.in_(sorted(identity.groups)))
        grants = self.dbsession.scalars(
            select(RoleGrant)
            .where(or_(*principals))
            .options(selectinload(RoleGrant.pool))
            .join(Pool, Pool.id == RoleGrant.pool_id)
            .order_by(Pool.path, RoleGrant.id)
        ).all()
        # every pool on the grants' paths, in one query, for their names
        ids = {i for g in grants for i in g.pool.ancestor_ids}
        names = {
            pool_id: name
            for pool_id, name in self.dbsession.execute(
                select(Pool.id, Pool.name).where(Pool.id.in_(ids))
            )
        }
        roles = [
            RoleHere(
                g.pool,
                "/".join(names.get(i, "?") for i in g.pool.ancestor_ids),
                g.role,
                "you" if g.user_id == user.id else f"group {g.group_name}",
            )
            for g in grants
        ]
        tokens = self.dbsession.scalars(
            select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        ).all()
        return AccountSummary(memberships, roles, len(tokens))
