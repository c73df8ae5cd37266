"""Domain logic.  Views, tasks and the CLI call these; services never import views."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refusal the user should read: the message says what was wrong."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(ServiceError):
    """The input breaks a rule (length, characters, range)."""


class NotFound(ServiceError):
    """The object does not exist, or the user may not see it."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request clashes with the current state (a duplicate, a non-empty pool)."""

    status = 409
    code = "conflict"


def includeme(config: Any) -> None:
    """Register every service with pyramid-services."""
    config.include("pyramid_services")
    from .approvals import ApprovalsService, IApprovalsService
    from .graphs import GraphsService, GraphsSettings, IGraphsService
    from .hosts import HostService, IHostService
    from .pools import IPoolService, PoolService

    def pool_factory(context: Any, request: Any) -> PoolService:
        return PoolService(request.dbsession, request.identity, request.client_addr or "")

    def host_factory(context: Any, request: Any) -> HostService:
        return HostService(request.dbsession, request.identity, request.client_addr or "")

    def approvals_factory(context: Any, request: Any) -> ApprovalsService:
        return ApprovalsService(request.dbsession)

    graphs_settings = GraphsSettings.from_settings(config.registry["fc_settings"])

    def graphs_factory(context: Any, request: Any) -> GraphsService:
        return GraphsService(graphs_settings)

    config.register_service_factory(approvals_factory, IApprovalsService)
    config.register_service_factory(graphs_factory, IGraphsService)
    config.register_service_factory(pool_factory, IPoolService)
    config.register_service_factory(host_factory, IHostService)
