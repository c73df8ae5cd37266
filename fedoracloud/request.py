"""What a FedoraCloud request carries: the Protocols views and route factories are typed with,
so that mypy checks what they read from the request and what they hand to the services.

Pyramid builds the request; the application adds ``dbsession`` and ``tm`` (models),
``identity`` (security), ``fc_settings`` (settings), ``find_service`` (pyramid-services) and
the navigation's reified counts (views).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pyramid.registry import Registry
    from pyramid.response import Response
    from pyramid.security import Allowed, Denied
    from sqlalchemy.orm import Session
    from transaction import TransactionManager
    from webob.multidict import MultiDict

    from .security import Identity
    from .settings import Settings


class FcRequest(Protocol):
    """A request to FedoraCloud, as views, route factories and templates see it."""

    # what Pyramid and WebOb give every request
    matchdict: dict[str, str]
    GET: MultiDict[str, str]
    POST: MultiDict[str, Any]
    params: MultiDict[str, Any]
    headers: Any
    body: bytes
    json_body: Any
    client_addr: str | None
    user_agent: str | None
    method: str
    path: str
    path_qs: str
    path_url: str
    application_url: str
    content_length: int | None
    override_renderer: str
    context: Any
    matched_route: Any
    registry: Registry
    response: Response
    #: the signed cookie session (``flash``, ``pop_flash``, dict access)
    session: Any

    # what FedoraCloud adds
    dbsession: Session
    tm: TransactionManager
    fc_settings: Settings

    @property
    def identity(self) -> Identity | None:
        """Who is asking: None when nobody is logged in."""
        ...

    # the navigation's counts and shortcuts, asked once per request
    may_approve_access: bool
    pending_approvals: int
    vm_requests_waiting: int
    smart_pool_shortcuts: list[Any]

    def find_service(self, iface: Any = ..., context: Any = ..., name: str = ...) -> Any:
        """The service registered for an interface (pyramid-services)."""
        ...

    def has_permission(self, permission: str, context: Any = ...) -> Allowed | Denied:
        """What the security policy decides for ``permission`` on ``context``."""
        ...

    def route_url(self, route_name: str, *elements: Any, **kw: Any) -> str:
        """The URL of a named route."""
        ...

    def route_path(self, route_name: str, *elements: Any, **kw: Any) -> str:
        """The path of a named route."""
        ...


class UserRequest(FcRequest, Protocol):
    """A request that passed a view's permission: someone is logged in (every view but
    those declaring NO_PERMISSION_REQUIRED, and the error views)."""

    @property
    def identity(self) -> Identity:
        """Who is asking."""
        ...
