"""The audit log page: who did what to what, when, from where, with before and after.

Super admins read every event; anyone else reads their own events and those of the pools
they may view (filtered in SQL).
"""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ..permissions import Permission
from ..request import FcRequest
from ..services import InvalidInput
from ..services.audit import AuditQuery, parse_day, search, target_types
from . import Page, page_number


def audit_query(request: FcRequest) -> AuditQuery:
    """The audit log's filters from the query string (``from``/``to`` are YYYY-MM-DD;
    ``sort`` is ``-at``, newest first, or ``at``, oldest first)."""
    sort = request.GET.get("sort", "-at")
    if sort not in ("at", "-at"):
        raise InvalidInput(
            f"the audit log sorts by time only: sort=at or sort=-at, not {sort[:32]!r}",
            {"field": "sort"},
        )
    return AuditQuery(
        oldest_first=sort == "at",
        user=request.GET.get("user", "").strip(),
        action=request.GET.get("action", "").strip(),
        target_type=request.GET.get("target_type", "").strip(),
        since=parse_day(request.GET.get("from", ""), "from"),
        until=parse_day(request.GET.get("to", ""), "to"),
        page=page_number(request),
        per_page=request.fc_settings.page_size,
    )


@view_config(route_name="audit", renderer="audit/list.jinja2", permission=Permission.VIEW)
def audit_log(request: FcRequest) -> dict[str, Any]:
    """One page of the events the user may read, newest first."""
    query = audit_query(request)
    rows, total = search(request.dbsession, query, request.identity)
    return {
        "page": Page(rows, total, query.page, query.per_page, request),
        "query": query,
        "target_types": target_types(request.dbsession, request.identity),
    }
