"""The audit log: recording events (who did what to what, when, from where, before and
after) and reading them back, filtered to what the reader may see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, distinct, func, or_, select, true
from sqlalchemy.orm import Session

from ..models import AuditEvent, Pool
from . import InvalidInput

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TARGET_TYPE = re.compile(r"^[a-z_]{0,16}$")
EARLIEST = date(1970, 1, 1)
LATEST = date(9998, 12, 31)


def record(
    dbsession: Session,
    actor: Any,
    action: str,
    target_type: str,
    target_id: int | None,
    *,
    pool_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    remote_addr: str = "",
) -> AuditEvent:
    """Add one audit event to the session (committed with the change it describes)."""
    user = getattr(actor, "user", None)
    event = AuditEvent(
        user_id=user.id if user is not None else None,
        username=user.username if user is not None else "system",
        action=action,
        target_type=target_type,
        target_id=target_id,
        pool_id=pool_id,
        remote_addr=remote_addr[:45],
        before=before,
        after=after,
    )
    dbsession.add(event)
    return event


def parse_day(raw: str, field: str) -> date | None:
    """A ``YYYY-MM-DD`` query parameter as a date (None if empty), or InvalidInput."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if not _DAY.match(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"'{field}' must be a date like 2024-05-31, not {raw[:32]!r}", {"field": field}
        ) from None
    if not EARLIEST <= day <= LATEST:
        raise InvalidInput(
            f"'{field}' must be a date from {EARLIEST} to {LATEST}", {"field": field}
        )
    return day


@dataclass
class AuditQuery:
    """An audit log request: filters and a page.  Newest events come first."""

    user: str = ""
    action: str = ""
    target_type: str = ""
    since: date | None = None
    until: date | None = None
    page: int = 1
    per_page: int = 25
    #: oldest events first instead of newest first
    oldest_first: bool = False

    def validate(self) -> AuditQuery:
        if len(self.user) > 64:
            raise InvalidInput("a user name has at most 64 characters", {"field": "user"})
        if len(self.action) > 64:
            raise InvalidInput("an action has at most 64 characters", {"field": "action"})
        if not _TARGET_TYPE.match(self.target_type):
            raise InvalidInput(
                "a target type is at most 16 lowercase letters or '_', such as 'pool'",
                {"field": "target_type"},
            )
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("the 'from' date is after the 'to' date", {"field": "from"})
        if self.page < 1 or self.page > 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        return self


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def audit_condition(identity: Any) -> Any:
    """The events someone may read: all for super admins; else their own and those of
    pools they may view (a condition on AuditEvent outer-joined to Pool)."""
    if identity.is_super_admin:
        return true()
    return or_(
        AuditEvent.user_id == identity.user.id,
        and_(Pool.id.isnot(None), identity.visible_pools()),
    )


def search(
    dbsession: Session, query: AuditQuery, identity: Any
) -> tuple[list[tuple[AuditEvent, str | None]], int]:
    """One page of the events the identity may read, filtered, newest first, with the name
    of each event's pool, and how many events match."""
    query.validate()
    stmt = (
        select(AuditEvent, Pool.name)
        .outerjoin(Pool, Pool.id == AuditEvent.pool_id)
        .where(audit_condition(identity))
    )
    if query.user:
        stmt = stmt.where(AuditEvent.username == query.user)
    if query.action:
        stmt = stmt.where(AuditEvent.action.startswith(query.action, autoescape=True))
    if query.target_type:
        stmt = stmt.where(AuditEvent.target_type == query.target_type)
    if query.since:
        stmt = stmt.where(AuditEvent.at >= _midnight(query.since))
    if query.until:
        stmt = stmt.where(AuditEvent.at < _midnight(query.until + timedelta(days=1)))
    total = (
        dbsession.scalar(
            select(func.count()).select_from(stmt.with_only_columns(AuditEvent.id).subquery())
        )
        or 0
    )
    rows = dbsession.execute(
        stmt.order_by(
            *(
                (AuditEvent.at.asc(), AuditEvent.id.asc())
                if query.oldest_first
                else (AuditEvent.at.desc(), AuditEvent.id.desc())
            )
        )
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    )
    return [(event, pool_name) for event, pool_name in rows], total


def target_types(dbsession: Session, identity: Any) -> list[str]:
    """The target types of the events the identity may read, for a filter menu."""
    return list(
        dbsession.scalars(
            select(distinct(AuditEvent.target_type))
            .outerjoin(Pool, Pool.id == AuditEvent.pool_id)
            .where(audit_condition(identity))
            .order_by(AuditEvent.target_type)
        )
    )
