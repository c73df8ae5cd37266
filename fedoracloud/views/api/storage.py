"""``/api/v1/storage-servers``, ``/api/v1/storage-pools`` (with their volumes, refresh and
define) and ``/api/v1/storage-replication``.

Storage servers exist only for super admins (anyone else: an empty list, 404 for one);
a storage pool is seen by the admins of a hardware pool using it.  Work on the hosts
answers 202 with its task.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config

from ...models import StoragePool, StorageServer, StorageVolume, Task
from ...permissions import Permission
from ...request import FcRequest
from ...resources import StoragePoolContext, StorageServerContext, StorageVolumeContext
from ...services.storage import (
    IStorageService,
    ReplicationPair,
    visible_storage_pools,
)
from . import json_body
from .vms import task_json


def server_json(server: StorageServer, request: FcRequest) -> dict[str, Any]:
    """A storage server as the API shows it."""
    return {
        "id": server.id,
        "hostname": server.hostname,
        "address": server.address,
        "role": server.role,
        "replicates_to": server.replicates_to_id,
        "capacity_bytes": server.capacity_bytes,
        "last_seen_at": server.last_seen_at,
        "checked_at": server.checked_at,
        "last_error": server.last_error,
        "storage_pools": [p.id for p in server.storage_pools],
        "url": request.route_url("api_storage_server", server_id=server.id),
    }


def volume_json(volume: StorageVolume, request: FcRequest) -> dict[str, Any]:
    """A volume, with the figures libvirt last reported."""
    return {
        "id": volume.id,
        "name": volume.name,
        "key": volume.key,
        "path": volume.path,
        "format": volume.format,
        "capacity_bytes": volume.capacity_bytes,
        "allocation_bytes": volume.allocation_bytes,
        "url": request.route_url(
            "api_storage_volume", storage_pool_id=volume.storage_pool_id, volume_id=volume.id
        ),
    }


def pool_json(pool: StoragePool, request: FcRequest) -> dict[str, Any]:
    """A storage pool: what it is, who uses it, and what libvirt last reported."""
    return {
        "id": pool.id,
        "name": pool.name,
        "kind": pool.kind,
        "server": pool.server_id,
        "hardware_pools": [p.id for p in pool.hardware_pools],
        "portal_address": pool.portal_address,
        "port": pool.port,
        "target_iqn": pool.target_iqn,
        "initiator_iqn": pool.initiator_iqn,
        "lun": pool.lun,
        "source_path": pool.source_path,
        "target_path": pool.target_path,
        "volume_group": pool.volume_group,
        "parent_pool": pool.parent_pool_id,
        "state": pool.state,
        "last_error": pool.last_error,
        "capacity_bytes": pool.capacity_bytes,
        "allocation_bytes": pool.allocation_bytes,
        "available_bytes": pool.available_bytes,
        "refreshed_at": pool.refreshed_at,
        "volume_count": len(pool.volumes),
        "url": request.route_url("api_storage_pool", storage_pool_id=pool.id),
    }


def pair_json(pair: ReplicationPair) -> dict[str, Any]:
    """A master → secondary pair and how far they agree."""
    return {
        "master": pair.master.id,
        "secondary": pair.secondary.id,
        "status": pair.status,
        "master_reachable": pair.master_reachable,
        "secondary_reachable": pair.secondary_reachable,
        "master_bytes": pair.master_bytes,
        "secondary_bytes": pair.secondary_bytes,
        "only_on_master": pair.only_on_master,
        "only_on_secondary": pair.only_on_secondary,
        "size_differs": pair.size_differs,
        "warnings": pair.warnings,
    }


def _accepted(request: FcRequest, task: Task, **extra: Any) -> dict[str, Any]:
    request.response.status = 202
    body = {**extra, "task": task_json(task, request)}
    if body["task"]["url"]:
        request.response.headers["Location"] = body["task"]["url"]
    return body


def _no_fields(request: FcRequest) -> None:
    """An action that takes no input: an empty body, or an empty JSON object."""
    if request.body:
        json_body(request, frozenset())


# -- servers ----------------------------------------------------------------------------------


@view_config(route_name="api_storage_servers", request_method="GET", renderer="json")
def list_servers(request: FcRequest) -> dict[str, Any]:
    """Every storage server (an empty list for anyone but a super admin)."""
    servers = (
        request.find_service(IStorageService).servers()
        if request.has_permission(Permission.SITE_SETTINGS)
        else []
    )
    items = [server_json(s, request) for s in servers]
    return {"items": items, "next": None, "total": len(items)}


@view_config(
    route_name="api_storage_servers",
    request_method="POST",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def create_server(request: FcRequest) -> dict[str, Any]:
    """Add a storage server; 201."""
    server = request.find_service(IStorageService).create_server(json_body(request))
    request.response.status = 201
    return server_json(server, request)


@view_config(route_name="api_storage_server", request_method="GET", renderer="json")
def get_server(context: StorageServerContext, request: FcRequest) -> dict[str, Any]:
    """One storage server."""
    return server_json(context.server, request)


@view_config(
    route_name="api_storage_server",
    request_method="PATCH",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def update_server(context: StorageServerContext, request: FcRequest) -> dict[str, Any]:
    """Change a storage server (the fields given)."""
    server = request.find_service(IStorageService).update_server(context.server, json_body(request))
    return server_json(server, request)


@view_config(
    route_name="api_storage_server", request_method="DELETE", permission=Permission.SITE_SETTINGS
)
def delete_server(context: StorageServerContext, request: FcRequest) -> Any:
    """Forget a storage server no storage pool lives on; 204."""
    request.find_service(IStorageService).delete_server(context.server)
    return HTTPNoContent()


@view_config(route_name="api_storage_replication", request_method="GET", renderer="json")
def replication(request: FcRequest) -> dict[str, Any]:
    """Each master → secondary pair, compared (empty for anyone but a super admin)."""
    admin = request.has_permission(Permission.SITE_SETTINGS)
    pairs = request.find_service(IStorageService).replication() if admin else []
    return {"items": [pair_json(p) for p in pairs], "next": None, "total": len(pairs)}


# -- pools ------------------------------------------------------------------------------------


@view_config(route_name="api_storage_pools", request_method="GET", renderer="json")
def list_pools(request: FcRequest) -> dict[str, Any]:
    """The storage pools the caller may see."""
    pools = request.find_service(IStorageService).storage_pools(
        visible_storage_pools(request.identity)
    )
    return {"items": [pool_json(p, request) for p in pools], "next": None, "total": len(pools)}


@view_config(
    route_name="api_storage_pools",
    request_method="POST",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def create_pool(request: FcRequest) -> dict[str, Any]:
    """Add a storage pool; 201 with the task that defines it on its hosts."""
    pool, task = request.find_service(IStorageService).create_pool(json_body(request))
    request.response.status = 201
    body = pool_json(pool, request)
    body["task"] = task_json(task, request) if task is not None else None
    return body


@view_config(route_name="api_storage_pool", request_method="GET", renderer="json")
def get_pool(context: StoragePoolContext, request: FcRequest) -> dict[str, Any]:
    """One storage pool."""
    return pool_json(context.storage_pool, request)


@view_config(
    route_name="api_storage_pool",
    request_method="PATCH",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def update_pool(context: StoragePoolContext, request: FcRequest) -> dict[str, Any]:
    """Change which hardware pools use a storage pool (or its server)."""
    pool, task = request.find_service(IStorageService).update_pool(
        context.storage_pool, json_body(request)
    )
    body = pool_json(pool, request)
    body["task"] = task_json(task, request) if task is not None else None
    return body


@view_config(
    route_name="api_storage_pool", request_method="DELETE", permission=Permission.SITE_SETTINGS
)
def delete_pool(context: StoragePoolContext, request: FcRequest) -> Any:
    """Forget a storage pool no VM uses; 204."""
    request.find_service(IStorageService).delete_pool(context.storage_pool)
    return HTTPNoContent()


@view_config(
    route_name="api_storage_pool_refresh",
    request_method="POST",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def refresh_pool(context: StoragePoolContext, request: FcRequest) -> dict[str, Any]:
    """Queue a refresh from libvirt; 202 with the task."""
    _no_fields(request)
    return _accepted(
        request, request.find_service(IStorageService).queue_refresh(context.storage_pool)
    )


@view_config(
    route_name="api_storage_pool_define",
    request_method="POST",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def define_pool(context: StoragePoolContext, request: FcRequest) -> dict[str, Any]:
    """Queue defining and starting the pool on its hosts again; 202 with the task."""
    _no_fields(request)
    return _accepted(
        request, request.find_service(IStorageService).queue_define(context.storage_pool)
    )


# -- volumes ----------------------------------------------------------------------------------


@view_config(route_name="api_storage_volumes", request_method="GET", renderer="json")
def list_volumes(context: StoragePoolContext, request: FcRequest) -> dict[str, Any]:
    """The pool's volumes as the last refresh found them."""
    volumes = context.storage_pool.volumes
    return {
        "items": [volume_json(v, request) for v in volumes],
        "next": None,
        "total": len(volumes),
    }


@view_config(
    route_name="api_storage_volumes",
    request_method="POST",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def create_volume(context: StoragePoolContext, request: FcRequest) -> dict[str, Any]:
    """Queue a new volume ``{"name", "size_gib", "format"}``; 202 with the task."""
    task = request.find_service(IStorageService).queue_create_volume(
        context.storage_pool, json_body(request)
    )
    return _accepted(request, task)


@view_config(route_name="api_storage_volume", request_method="GET", renderer="json")
def get_volume(context: StorageVolumeContext, request: FcRequest) -> dict[str, Any]:
    """One volume."""
    return volume_json(context.volume, request)


@view_config(
    route_name="api_storage_volume",
    request_method="PATCH",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def resize_volume(context: StorageVolumeContext, request: FcRequest) -> dict[str, Any]:
    """Queue growing a volume ``{"size_gib": N}``; 202 with the task."""
    task = request.find_service(IStorageService).queue_resize_volume(
        context.volume, json_body(request)
    )
    return _accepted(request, task, volume=volume_json(context.volume, request))


@view_config(
    route_name="api_storage_volume",
    request_method="DELETE",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def delete_volume(context: StorageVolumeContext, request: FcRequest) -> dict[str, Any]:
    """Queue deleting a volume no VM uses; 202 with the task."""
    task = request.find_service(IStorageService).queue_delete_volume(context.volume)
    return _accepted(request, task)
