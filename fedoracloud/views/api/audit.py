"""``/api/v1/audit``: the audit log as JSON, with the audit page's filters."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import AuditEvent
from ...permissions import Permission
from ...request import FcRequest
from ...services.audit import search
from .. import Page
from ..audit import audit_query


def event_json(event: AuditEvent, pool_name: str | None) -> dict[str, Any]:
    """An audit event as the API shows it."""
    return {
        "id": event.id,
        "at": event.at,
        "user": event.username,
        "user_id": event.user_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "pool": event.pool_id,
        "pool_name": pool_name,
        "remote_addr": event.remote_addr,
        "before": event.before,
        "after": event.after,
    }


@view_config(
    route_name="api_audit", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_events(request: FcRequest) -> dict[str, Any]:
    """Events the caller may read, newest first: ``user``, ``action`` (a prefix such as
    ``pool.``), ``target_type``, ``from`` and ``to`` (YYYY-MM-DD, inclusive), ``page``."""
    query = audit_query(request)
    rows, total = search(request.dbsession, query, request.identity)
    page = Page(rows, total, query.page, query.per_page, request)
    return {
        "items": [event_json(e, name) for e, name in rows],
        "next": page.next_url,
        "total": total,
    }
