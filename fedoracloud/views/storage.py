"""Storage pages: servers and storage pools (``/storage``), one storage pool with its
volumes, one server, and the replication view that explains master → secondary."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config

from ..models import PoolKind
from ..models.storage import STORAGE_POOL_KINDS, VOLUME_MAKING_KINDS
from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import StoragePoolContext, StorageServerContext
from ..services import InvalidInput, ServiceError
from ..services.pools import IPoolService
from ..services.storage import (
    POOL_FIELDS,
    SERVER_FIELDS,
    IStorageService,
    StorageService,
    size_label,
    visible_storage_pools,
)
from . import refused


def _form(request: FcRequest, fields: frozenset[str]) -> dict[str, Any]:
    """The form's fields that the service knows (hardware pools as a list)."""
    body: dict[str, Any] = {
        k: v for k, v in request.POST.items() if k in fields and k != "hardware_pools"
    }
    if "hardware_pools" in fields and "hardware_pools" in request.POST:
        body["hardware_pools"] = request.POST.getall("hardware_pools")
    return body


def _hardware_pools(request: UserRequest) -> list[Any]:
    pools = request.find_service(IPoolService)
    return [
        p
        for p in pools.subtree(pools.root(), request.identity.visible_pools())
        if p.kind == PoolKind.HARDWARE
    ]


@view_config(route_name="storage", renderer="storage/list.jinja2", permission=Permission.VIEW)
def storage_list(request: UserRequest) -> dict[str, Any]:
    """Storage servers (super admins) and the storage pools the user may see."""
    service = request.find_service(IStorageService)
    admin = request.has_permission(Permission.SITE_SETTINGS)
    storage_pools = service.storage_pools(visible_storage_pools(request.identity))
    return {
        "servers": service.servers() if admin else [],
        "storage_pools": storage_pools,
        "can_manage": admin,
        "kinds": STORAGE_POOL_KINDS,
        "hardware_pools": _hardware_pools(request) if admin else [],
        "iscsi_pools": [p for p in storage_pools if p.kind == "iscsi"],
        "size": size_label,
    }


@view_config(
    route_name="storage_server_new", request_method="POST", permission=Permission.SITE_SETTINGS
)
def server_create(request: FcRequest) -> Any:
    """Add a storage server."""
    try:
        server = request.find_service(IStorageService).create_server(_form(request, SERVER_FIELDS))
        request.session.flash(f"Storage server {server.hostname} added.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("storage"))


@view_config(
    route_name="storage_server",
    request_method="GET",
    renderer="storage/server.jinja2",
    permission=Permission.SITE_SETTINGS,
)
def server_page(context: StorageServerContext, request: FcRequest) -> dict[str, Any]:
    """A storage server: its role, replication, pools and last check."""
    return {
        "server": context.server,
        "servers": [
            s for s in request.find_service(IStorageService).servers() if s.id != context.server.id
        ],
        "size": size_label,
    }


@view_config(
    route_name="storage_server", request_method="POST", permission=Permission.SITE_SETTINGS
)
def server_update(context: StorageServerContext, request: FcRequest) -> Any:
    """Change a storage server."""
    try:
        request.find_service(IStorageService).update_server(
            context.server, _form(request, SERVER_FIELDS)
        )
        request.session.flash(f"Storage server {context.server.hostname} saved.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("storage_server", server_id=context.server.id))


@view_config(
    route_name="storage_server_delete", request_method="POST", permission=Permission.SITE_SETTINGS
)
def server_delete(context: StorageServerContext, request: FcRequest) -> Any:
    """Forget a storage server."""
    name = context.server.hostname
    try:
        request.find_service(IStorageService).delete_server(context.server)
    except ServiceError as exc:
        refused(request, exc)
        return HTTPSeeOther(request.route_url("storage_server", server_id=context.server.id))
    request.session.flash(f"Storage server {name} deleted.", "success")
    return HTTPSeeOther(request.route_url("storage"))


@view_config(
    route_name="storage_server_check", request_method="POST", permission=Permission.SITE_SETTINGS
)
def server_check(context: StorageServerContext, request: FcRequest) -> Any:
    """Queue a reachability check of the server's portal."""
    task = request.find_service(IStorageService).queue_check(context.server)
    request.session.flash(f"Checking {context.server.hostname} (task {task.id}).", "info")
    return HTTPSeeOther(request.route_url("storage_server", server_id=context.server.id))


@view_config(
    route_name="storage_pool_new", request_method="POST", permission=Permission.SITE_SETTINGS
)
def pool_create(request: FcRequest) -> Any:
    """Add a storage pool; its definition on the hosts is queued."""
    try:
        pool, task = request.find_service(IStorageService).create_pool(_form(request, POOL_FIELDS))
    except ServiceError as exc:
        refused(request, exc)
        return HTTPSeeOther(request.route_url("storage"))
    queued = f"; defining it on the hosts (task {task.id})" if task is not None else ""
    request.session.flash(f"Storage pool {pool.name} added{queued}.", "success")
    return HTTPSeeOther(request.route_url("storage_pool", storage_pool_id=pool.id))


@view_config(
    route_name="storage_pool",
    request_method="GET",
    renderer="storage/pool.jinja2",
    permission=Permission.VIEW,
)
def pool_page(context: StoragePoolContext, request: UserRequest) -> dict[str, Any]:
    """A storage pool: what it is, its hosts, figures and volumes from libvirt."""
    service = request.find_service(IStorageService)
    pool = context.storage_pool
    admin = request.has_permission(Permission.SITE_SETTINGS, context)
    return {
        "pool": pool,
        "hosts": service.hosts_for(pool),
        "can_refresh": request.has_permission(Permission.POOL_MODIFY, context),
        "can_manage": admin,
        "makes_volumes": pool.kind in VOLUME_MAKING_KINDS,
        "hardware_pools": _hardware_pools(request) if admin else [],
        "size": size_label,
    }


#: the actions on a storage pool page: (permission, what they do)
_POOL_ACTIONS = {
    "refresh": Permission.POOL_MODIFY,
    "define": Permission.SITE_SETTINGS,
    "attach": Permission.SITE_SETTINGS,
    "delete": Permission.SITE_SETTINGS,
    "volume": Permission.POOL_MODIFY,
    "resize": Permission.POOL_MODIFY,
    "remove": Permission.POOL_MODIFY,
}


@view_config(route_name="storage_pool_action", request_method="POST", permission=Permission.VIEW)
def pool_action(context: StoragePoolContext, request: FcRequest) -> Any:
    """A button of the storage pool page (refresh, define, attach, delete, volume work)."""
    action = request.matchdict["action"]
    if action not in _POOL_ACTIONS:
        raise HTTPNotFound()
    if not request.has_permission(_POOL_ACTIONS[action], context):
        raise HTTPForbidden()
    pool, service = context.storage_pool, request.find_service(IStorageService)
    here = request.route_url("storage_pool", storage_pool_id=pool.id)
    try:
        if action == "delete":
            name = pool.name
            task = service.delete_pool(pool)
            undefine = f"; undefining it on its hosts (task {task.id})" if task else ""
            request.session.flash(f"Storage pool {name} deleted{undefine}.", "success")
            return HTTPSeeOther(request.route_url("storage"))
        message = _pool_work(service, pool, action, request)
        request.session.flash(message, "info")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(here)


def _pool_work(service: StorageService, pool: Any, action: str, request: FcRequest) -> str:
    if action == "refresh":
        return f"Refreshing {pool.name} from libvirt (task {service.queue_refresh(pool).id})."
    if action == "define":
        return f"Defining {pool.name} on its hosts (task {service.queue_define(pool).id})."
    if action == "attach":
        _pool, task = service.update_pool(pool, _form(request, frozenset({"hardware_pools"})))
        return f"Hardware pools of {pool.name} saved" + (
            f"; defining it on their hosts (task {task.id})." if task is not None else "."
        )
    if action == "volume":
        body = _form(request, frozenset({"name", "size_gib", "format"}))
        task = service.queue_create_volume(pool, body)
        return f"Making volume {body.get('name')} (task {task.id})."
    volume_id = request.POST.get("volume", "")
    volume = next((v for v in pool.volumes if str(v.id) == volume_id), None)
    if volume is None:
        raise InvalidInput(f"no volume {volume_id[:20]!r} in {pool.name}", {"field": "volume"})
    if action == "resize":
        task = service.queue_resize_volume(volume, _form(request, frozenset({"size_gib"})))
        return f"Resizing {volume.name} (task {task.id})."
    task = service.queue_delete_volume(volume)
    return f"Deleting {volume.name} (task {task.id})."


@view_config(
    route_name="storage_replication",
    request_method="GET",
    renderer="storage/replication.jinja2",
    permission=Permission.VIEW,
)
def replication_page(request: FcRequest) -> dict[str, Any]:
    """Each master → secondary pair: reachable, sizes and volumes agree; what it is for."""
    return {"pairs": request.find_service(IStorageService).replication(), "size": size_label}


@view_config(
    route_name="storage_replication", request_method="POST", permission=Permission.SITE_SETTINGS
)
def replication_check(request: FcRequest) -> Any:
    """Check every pair now: both servers' portals, and a refresh of their pools."""
    service = request.find_service(IStorageService)
    tasks = [t for pair in service.replication() for t in service.queue_replication_check(pair)]
    request.session.flash(f"Checking the storage servers ({len(tasks)} tasks).", "info")
    return HTTPSeeOther(request.route_url("storage_replication"))
