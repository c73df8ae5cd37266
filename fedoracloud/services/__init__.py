"""Domain logic.  Views, tasks and the CLI call these; services never import views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import ServiceContext


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
    """Register every service with pyramid-services: each is built from the request's
    ``ServiceContext`` (the task service in ``fedoracloud.tasks``, with the dispatcher)."""
    config.include("pyramid_services")
    from ..puppet.enc import EncService, IEncService
    from .access import AccessService, IAccessService
    from .account import AccountService, IAccountService
    from .approvals import ApprovalsService, IApprovalsService
    from .cobbler import IProfileService, ProfileService
    from .consoles import ConsoleService, IConsoleService
    from .enrollment import EnrollmentService, IEnrollmentService
    from .grants import GrantService, IGrantService
    from .graphs import GraphsService, GraphsSettings, IGraphsService
    from .hosts import HostService, IHostService
    from .networks import INetworkService, NetworkService
    from .pools import IPoolService, PoolService
    from .quotas import IQuotaService, QuotaService
    from .smart_pools import ISmartPoolService, SmartPoolService
    from .storage import IStorageService, StorageService
    from .throttle import IThrottleService, ThrottleService
    from .tokens import ITokenService, TokenService
    from .users import IUserService, UserService
    from .vm_list import IVmListService, VmListService
    from .vm_requests import IVmRequestService, VmRequestService
    from .vms import IVmService, VmService

    services: list[tuple[Callable[[ServiceContext], Any], Any]] = [
        (AccessService, IAccessService),
        (AccountService, IAccountService),
        (ApprovalsService, IApprovalsService),
        (ConsoleService, IConsoleService),
        (EncService, IEncService),
        (EnrollmentService, IEnrollmentService),
        (GrantService, IGrantService),
        (HostService, IHostService),
        (NetworkService, INetworkService),
        (PoolService, IPoolService),
        (ProfileService, IProfileService),
        (QuotaService, IQuotaService),
        (SmartPoolService, ISmartPoolService),
        (StorageService, IStorageService),
        (ThrottleService, IThrottleService),
        (TokenService, ITokenService),
        (UserService, IUserService),
        (VmListService, IVmListService),
        (VmRequestService, IVmRequestService),
        (VmService, IVmService),
    ]
    for service, interface in services:
        config.register_service_factory(context_factory(service), interface)

    # the graphs read RRD files only: one service for the app, made from its settings
    graphs_settings = GraphsSettings.from_settings(config.registry["fc_settings"])

    def graphs_factory(context: Any, request: Any) -> GraphsService:
        return GraphsService(graphs_settings)

    config.register_service_factory(graphs_factory, IGraphsService)


def context_factory(service: Callable[[ServiceContext], Any]) -> Callable[[Any, Any], Any]:
    """A pyramid-services factory building ``service`` from the request's
    ``ServiceContext`` (``ServiceContext.from_request``: one per request)."""

    def factory(context: Any, request: Any) -> Any:
        return service(ServiceContext.from_request(request))

    return factory
