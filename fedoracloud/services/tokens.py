"""API tokens: named secrets a user makes for scripts; only their SHA-256 is stored.

A token acts with its owner's permissions (the security policy reads
``Authorization: Bearer fct_...``).  The secret is shown once, when it is made.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from zope.interface import Interface

from ..models import ApiToken, User
from ..models.meta import utcnow
from ..models.user import API_TOKEN_PREFIX, hash_token
from . import Conflict, InvalidInput, ServiceError
from .audit import record
from .context import Service

TOKEN_NAME_MAX = 64
#: how many unrevoked tokens one person may hold
LIVE_TOKENS_MAX = 50
#: how much of the secret is kept in clear, to tell tokens apart
PREFIX_LENGTH = 12


class TokenRefused(ServiceError):
    """Making a token is not allowed this way."""

    status = 403
    code = "forbidden"


@dataclass
class NewToken:
    """A token just made, with its secret (which is never stored)."""

    token: ApiToken
    secret: str


def check_token_name(name: str) -> str:
    """A valid token name (stripped) or InvalidInput saying why."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a token needs a name", {"field": "name"})
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(
            f"a token name has at most {TOKEN_NAME_MAX} characters", {"field": "name"}
        )
    if not name.isprintable():
        raise InvalidInput("a token name has no control characters", {"field": "name"})
    return name


def token_summary(token: ApiToken) -> dict[str, Any]:
    """What the audit log keeps of a token (never its secret or hash)."""
    return {"name": token.name, "prefix": token.prefix, "revoked": token.revoked_at is not None}


class ITokenService(Interface):
    """Marker for pyramid-services: ``request.find_service(ITokenService)``."""


class TokenService(Service):
    """A user's API tokens."""

    def list_for(self, user: User) -> list[ApiToken]:
        """The user's tokens, newest first (revoked ones too)."""
        return list(
            self.dbsession.scalars(
                select(ApiToken)
                .where(ApiToken.user_id == user.id)
                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
            )
        )

    def search(
        self,
        user: User,
        status: str = "",
        sort: str = "created",
        descending: bool = True,
        page: int = 1,
        per_page: int = 25,
    ) -> tuple[list[ApiToken], int]:
        """One page of the user's tokens: ``status`` is "", ``active`` or ``revoked``; sorted
        by ``name``, ``created`` or ``last_used``."""
        columns = {
            "name": ApiToken.name,
            "created": ApiToken.created_at,
            "last_used": ApiToken.last_used_at,
        }
        if sort not in columns:
            raise InvalidInput(
                f"cannot sort tokens by {sort[:32]!r}; by one of " + ", ".join(columns),
                {"field": "sort"},
            )
        if status not in ("", "active", "revoked"):
            raise InvalidInput(
                f"unknown token status {status[:32]!r}; active or revoked", {"field": "status"}
            )
        if not 1 <= page <= 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        where = [ApiToken.user_id == user.id]
        if status == "active":
            where.append(ApiToken.revoked_at.is_(None))
        elif status == "revoked":
            where.append(ApiToken.revoked_at.is_not(None))
        total = int(self.dbsession.scalar(select(func.count(ApiToken.id)).where(*where)) or 0)
        order = columns[sort].desc() if descending else columns[sort].asc()
        if sort == "last_used":
            order = order.nulls_last()
        rows = self.dbsession.scalars(
            select(ApiToken)
            .where(*where)
            .order_by(order, ApiToken.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        return list(rows), total

    def create(self, user: User, name: str, via_token: bool = False) -> NewToken:
        """Make a token; refuse bad or duplicate names, and tokens made with a token."""
        if via_token:
            raise TokenRefused("an API token cannot make API tokens; log in to make one")
        name = check_token_name(name)
        taken = self.dbsession.scalar(
            select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.name == name)
        )
        if taken is not None:
            raise Conflict(
                f"you already have a token named {name!r} (revoked ones keep their name);"
                " choose another name",
                {"field": "name"},
            )
        live = self.dbsession.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
        if (live or 0) >= LIVE_TOKENS_MAX:
            raise Conflict(
                f"you have {LIVE_TOKENS_MAX} tokens in use; revoke one before making another"
            )
        secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            user_id=user.id,
            name=name,
            token_hash=hash_token(secret),
            prefix=secret[:PREFIX_LENGTH],
        )
        self.dbsession.add(token)
        try:
            with self.dbsession.begin_nested():
                self.dbsession.flush()
        except IntegrityError as exc:
            raise Conflict(f"a token named {name!r} already exists", {"field": "name"}) from exc
        record(
            self.dbsession,
            self.actor,
            "token.create",
            "token",
            token.id,
            after=token_summary(token),
            remote_addr=self.remote_addr,
        )
        return NewToken(token, secret)

    def revoke(self, token: ApiToken) -> ApiToken:
        """Revoke a token for good (revoking it again changes nothing)."""
        if token.revoked_at is not None:
            return token
        before = token_summary(token)
        token.revoked_at = utcnow()
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "token.revoke",
            "token",
            token.id,
            before=before,
            after=token_summary(token),
            remote_addr=self.remote_addr,
        )
        return token
