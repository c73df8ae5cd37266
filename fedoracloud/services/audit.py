"""Recording audit events: who did what to what, when, from where, before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..models import AuditEvent


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
