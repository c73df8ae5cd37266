"""The super admins' approvals inbox at a glance: how many access requests, enrolled hosts
and VM requests wait for a decision (the number beside "Approvals" in the navigation)."""

from __future__ import annotations

from sqlalchemy import func, select
from zope.interface import Interface

from ..models import AccessRequest, Host, HostState, RequestState, VmRequest, VmRequestState
from .context import Service


class IApprovalsService(Interface):
    """Marker for pyramid-services: ``request.find_service(IApprovalsService)``."""


class ApprovalsService(Service):
    """Counts what waits in the approvals inbox."""

    def pending_count(self) -> int:
        """Access requests, hosts and VM requests waiting for a decision, in one statement
        (each count reads an index of the pending rows only)."""
        people = (
            select(func.count())
            .select_from(AccessRequest)
            .where(AccessRequest.state == RequestState.PENDING.value)
            .scalar_subquery()
        )
        hosts = (
            select(func.count())
            .select_from(Host)
            .where(Host.state == HostState.PENDING.value)
            .scalar_subquery()
        )
        vm_requests = (
            select(func.count())
            .select_from(VmRequest)
            .where(VmRequest.state == VmRequestState.PENDING.value)
            .scalar_subquery()
        )
        return self.dbsession.scalar(select(people + hosts + vm_requests)) or 0
