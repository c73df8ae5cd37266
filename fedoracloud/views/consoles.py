"""A VM's console: the page with noVNC, and the API call that issues its one-time token.

The page carries no token: ``static/console.js`` asks for one with a POST (JSON, the
session's CSRF token in ``X-CSRF-Token``) and hands it to the console proxy inside the
WebSocket handshake (see :mod:`fedoracloud.console_proxy`), so it is never in a URL.
"""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ..permissions import Permission
from ..request import FcRequest
from ..resources import VmContext
from ..services.consoles import TOKEN_PROTOCOL, IConsoleService, unavailable_reason


@view_config(
    route_name="vm_console",
    request_method="GET",
    renderer="consoles/show.jinja2",
    permission=Permission.CONSOLE,
)
def console_page(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """The console page: noVNC, or why this VM has no console now."""
    vm = context.vm
    return {
        "vm": vm,
        "unavailable": unavailable_reason(vm),
        "token_url": request.route_url("api_vm_console", vm_id=vm.id),
    }


@view_config(
    route_name="api_vm_console",
    request_method="POST",
    renderer="json",
    permission=Permission.CONSOLE,
)
def issue_console_token(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """A one-time token for the VM's VNC display (201), valid for one connection within
    ``fedoracloud.console.token_ttl`` seconds; 409 when the VM has no console now."""
    issued = request.find_service(IConsoleService).issue(context.vm)
    request.response.status = 201
    request.response.cache_control = "no-store"  # the token is shown once, never cached
    return {
        "token": issued.token,
        "subprotocols": ["binary", TOKEN_PROTOCOL + issued.token],
        "websocket_url": request.fc_settings.console.websocket_url,
        "expires_at": issued.expires_at,
        "vm": issued.vm.id,
        "vm_name": issued.vm.name,
    }
