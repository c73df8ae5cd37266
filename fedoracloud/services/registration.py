"""Every service registered with pyramid-services, for views to find with
``request.find_service(IThing)``: each is built from the request's ``ServiceContext``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..puppet.enc import EncService, IEncService
from .access import AccessService, IAccessService
from .account import AccountService, IAccountService
from .approvals import ApprovalsService, IApprovalsService
from .cobbler import IProfileService, ProfileService
from .consoles import ConsoleService, IConsoleService
from .context import ServiceContext
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


def includeme(config: Any) -> None:
    """Register every service with pyramid-services: each is built from the request's
    ``ServiceContext`` (the task service in ``fedoracloud.worker``, with the dispatcher)."""
    config.include("pyramid_services")

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
