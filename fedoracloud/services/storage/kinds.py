"""The storage task kinds, and what each does on the worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ...models import Host, StoragePool, StorageServer, StorageVolume, Task
from ...virt.storage import validate_pool_name, validate_volume_name
from .. import NotFound
from ..context import ServiceContext
from ..tasks import progress, register
from .input import GIB, _check_size, size_label
from .service import StorageService


def _target(task: Task, dbsession: Session, model: Any, what: str) -> Any:
    row = dbsession.get(model, task.target_id)
    if row is None:
        raise NotFound(f"{what} {task.target_id} no longer exists")
    return row


def run_pool_define(task: Task, dbsession: Session) -> str:
    """``storage.pool.define``: define and start the pool on every host using it."""
    pool = _target(task, dbsession, StoragePool, "storage pool")
    return StorageService(ServiceContext.for_session(dbsession)).define_on_hosts(
        pool, report=lambda percent, message: progress(task, percent, message)
    )


def run_pool_refresh(task: Task, dbsession: Session) -> str:
    """``storage.pool.refresh``: figures and volumes from libvirt."""
    return StorageService(ServiceContext.for_session(dbsession)).refresh(
        _target(task, dbsession, StoragePool, "storage pool")
    )


def run_volume_create(task: Task, dbsession: Session) -> str:
    """``storage.volume.create``: make a volume of ``args.size_gib`` named ``args.name``."""
    pool = _target(task, dbsession, StoragePool, "storage pool")
    args = dict(task.args or {})
    volume = StorageService(ServiceContext.for_session(dbsession)).create_volume(
        pool,
        validate_volume_name(str(args.get("name", ""))),
        _check_size(args.get("size_gib")) * GIB,
        str(args.get("format") or "raw"),
    )
    return f"{volume.name} ({size_label(volume.capacity_bytes)}) made in {pool.name}: {volume.path}"


def run_volume_resize(task: Task, dbsession: Session) -> str:
    """``storage.volume.resize``: grow a volume to ``args.size_gib``."""
    volume = _target(task, dbsession, StorageVolume, "volume")
    size = _check_size((task.args or {}).get("size_gib"))
    StorageService(ServiceContext.for_session(dbsession)).resize_volume(volume, size * GIB)
    return f"{volume.name} is now {size_label(volume.capacity_bytes)}"


def run_volume_delete(task: Task, dbsession: Session) -> str:
    """``storage.volume.delete``: delete a volume (one already gone is fine)."""
    volume = dbsession.get(StorageVolume, task.target_id)
    if volume is None:
        return "the volume was already deleted"
    return StorageService(ServiceContext.for_session(dbsession)).delete_volume(volume)


def run_pool_undefine(task: Task, dbsession: Session) -> str:
    """``storage.pool.undefine``: stop and forget a deleted pool on the hosts that had it
    (``args.name``, ``args.hosts``); a host without it is fine, the data stays."""
    args = dict(task.args or {})
    name = validate_pool_name(str(args.get("name", "")))
    done = []
    for host_id in args.get("hosts") or []:
        host = dbsession.get(Host, host_id)
        if host is None:
            continue
        StorageService(ServiceContext.for_session(dbsession)).storage_host(host).undefine_pool(name)
        done.append(host.hostname)
    return f"{name} undefined on " + (", ".join(done) or "no host")


def run_server_check(task: Task, dbsession: Session) -> str:
    """``storage.server.check``: can the server's iSCSI portal be reached."""
    return StorageService(ServiceContext.for_session(dbsession)).check_server(
        _target(task, dbsession, StorageServer, "storage server")
    )


register("storage.pool.define", run_pool_define, timeout=300, title="Define a storage pool")
register("storage.pool.refresh", run_pool_refresh, timeout=120, title="Refresh a storage pool")
register("storage.volume.create", run_volume_create, timeout=600, title="Create a volume")
register("storage.volume.resize", run_volume_resize, timeout=300, title="Resize a volume")
register("storage.volume.delete", run_volume_delete, timeout=300, title="Delete a volume")
register("storage.pool.undefine", run_pool_undefine, timeout=300, title="Undefine a storage pool")
register("storage.server.check", run_server_check, timeout=30, title="Check a storage server")
