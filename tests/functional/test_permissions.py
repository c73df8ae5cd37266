"""Who may do what where, through the real security policy.

THE TABLE below is the contract.  Alice holds ROLE on the hardware pool ``fedora``; every
ACTION is tried once on objects inside fedora's subtree ("granted") and once on the same
objects inside the sibling pool ``redhat`` ("sibling").  Each cell is the HTTP status she
gets.  A success also has to show its effect in the database; any other answer must leave
the database as it was.  Whoever may not view an object gets 404 for it, never 403; 403
means "you can see this, but your role does not allow that here".

To extend it: add a column to ROLES (and to every row), or add an ACTIONS entry and a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from fedoracloud.models import (
    ApiToken,
    Host,
    Network,
    Pool,
    StoragePool,
    StorageServer,
    Task,
    TaskState,
    Vm,
    VmRequest,
)
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.smart_pools import SmartPoolService
from fedoracloud.services.tasks import TaskService

from ..conftest import csrf_token, login
from ..factories import (
    HostFactory,
    NetworkFactory,
    PoolFactory,
    StoragePoolFactory,
    VmFactory,
)
from .conftest import (
    after_redirect,
    api_headers,
    assert_api_error,
    by_testid,
    flashes,
    grant,
    grant_group,
    host_rows,
    location_path,
    session_csrf,
    snapshot,
    text_of,
    tree_names,
)

#: who is asking: no grant at all; a role granted to alice on ``fedora``; the site admin
#: listed in ``fedoracloud.admins`` (no grant needed); alice's group holding admin on fedora
ROLES = ("none", "monitor", "user", "admin", "super_admin", "site admin", "group admin")

# fmt: off
#: the object is inside fedora, where the grant is
GRANTED = {
    #                      none  monitor user  admin super site  group
    "view pool page":     (404,  200,   200,  200,  200,  200,  200),
    "view pool (API)":    (404,  200,   200,  200,  200,  200,  200),
    "view host page":     (404,  200,   200,  200,  200,  200,  200),
    "view host (API)":    (404,  200,   200,  200,  200,  200,  200),
    "host graph (API)":   (404,  200,   200,  200,  200,  200,  200),
    "VM graph (API)":     (404,  200,   200,  200,  200,  200,  200),
    "create pool (form)": (404,  403,   403,  303,  303,  303,  303),
    "create pool (API)":  (404,  403,   403,  201,  201,  201,  201),
    "rename pool (form)": (404,  403,   403,  303,  303,  303,  303),
    "rename pool (API)":  (404,  403,   403,  200,  200,  200,  200),
    "move pool (form)":   (404,  403,   403,  303,  303,  303,  303),
    "move pool (API)":    (404,  403,   403,  200,  200,  200,  200),
    "delete pool (form)": (404,  403,   403,  303,  303,  303,  303),
    "delete pool (API)":  (404,  403,   403,  204,  204,  204,  204),
    "move host (form)":   (404,  403,   403,  303,  303,  303,  303),
    "move host (API)":    (404,  403,   403,  200,  200,  200,  200),
    "view networks page": (200,  200,   200,  200,  200,  200,  200),
    "view network (API)": (200,  200,   200,  200,  200,  200,  200),
    "view IP addresses (API)": (200, 200, 200, 200, 200,  200,  200),
    "create network (API)": (403, 403,  403,  403,  201,  201,  403),
    "delete network (form)": (403, 403, 403,  403,  303,  303,  403),
    "view storage pool (API)": (404, 404, 404,  200,  200,  200,  200),
    "refresh storage (API)": (404, 404,   404,  202,  202,  202,  202),
    "create volume (API)": (404, 404,     404,  202,  202,  202,  202),
    "define storage (API)": (404, 404,    404,  403,  202,  202,  403),
    "view VM page":       (404,  200,   200,  200,  200,  200,  200),
    "view VM (API)":      (404,  200,   200,  200,  200,  200,  200),
    "start VM (API)":     (404,  403,   202,  202,  202,  202,  202),
    "shutdown VM (API)":  (404,  403,   202,  202,  202,  202,  202),
    "power off VM (form)": (404, 403,   303,  303,  303,  303,  303),
    "create VM (API)":    (404,  403,   403,  201,  201,  201,  201),
    "create VM (form)":   (404,  403,   403,  303,  303,  303,  303),
    "delete VM (API)":    (404,  403,   403,  202,  202,  202,  202),
    "migrate VM (API)":   (404,  403,   403,  202,  202,  202,  202),
    "VM console page":    (404,  403,   200,  200,  200,  200,  200),
    "request VM (API)":   (404,  403,   201,  201,  201,  201,  201),
    "approve VM request (API)": (404, 404, 404, 202,  202,  202,  202),
    "deny VM request (form)": (404, 404, 404,  303,  303,  303,  303),
    "view VM request page": (404, 404,  404,  200,  200,  200,  200),
    "view storage pool page": (404, 404, 404,  200,  200,  200,  200),
    "view storage server (API)": (404, 404, 404, 404, 200,  200,  404),
    "replication page":   (404,  404,   404,  404,  200,  200,  404),
    "view VM task (API)": (404,  200,   200,  200,  200,  200,  200),
    "view VM task page":  (404,  200,   200,  200,  200,  200,  200),
    "cancel VM task (API)": (404, 403,  200,  200,  200,  200,  200),
    "view site task (API)": (404, 404,  404,  404,  200,  200,  404),
    "someone's smart pool page": (404, 404, 404, 404, 404, 404, 404),
    "someone's API token (API)": (404, 404, 404, 404, 404, 404, 404),
}
#: the same object inside redhat, fedora's sibling, where no grant reaches
SIBLING = {
    #                      none  monitor user  admin super site  group
    "view pool page":     (404,  404,   404,  404,  200,  200,  404),
    "view pool (API)":    (404,  404,   404,  404,  200,  200,  404),
    "view host page":     (404,  404,   404,  404,  200,  200,  404),
    "view host (API)":    (404,  404,   404,  404,  200,  200,  404),
    "host graph (API)":   (404,  404,   404,  404,  200,  200,  404),
    "VM graph (API)":     (404,  404,   404,  404,  200,  200,  404),
    "create pool (form)": (404,  404,   404,  404,  303,  303,  404),
    "create pool (API)":  (404,  404,   404,  404,  201,  201,  404),
    "rename pool (form)": (404,  404,   404,  404,  303,  303,  404),
    "rename pool (API)":  (404,  404,   404,  404,  200,  200,  404),
    "move pool (form)":   (404,  404,   404,  404,  303,  303,  404),
    "move pool (API)":    (404,  404,   404,  404,  200,  200,  404),
    "delete pool (form)": (404,  404,   404,  404,  303,  303,  404),
    "delete pool (API)":  (404,  404,   404,  404,  204,  204,  404),
    "move host (form)":   (404,  404,   404,  404,  303,  303,  404),
    "move host (API)":    (404,  404,   404,  404,  200,  200,  404),
    "view networks page": (200,  200,   200,  200,  200,  200,  200),
    "view network (API)": (200,  200,   200,  200,  200,  200,  200),
    "view IP addresses (API)": (200, 200, 200, 200, 200,  200,  200),
    "create network (API)": (403, 403,  403,  403,  201,  201,  403),
    "delete network (form)": (403, 403, 403,  403,  303,  303,  403),
    "view storage pool (API)": (404, 404, 404,  404,  200,  200,  404),
    "refresh storage (API)": (404, 404,   404,  404,  202,  202,  404),
    "create volume (API)": (404, 404,     404,  404,  202,  202,  404),
    "define storage (API)": (404, 404,    404,  404,  202,  202,  404),
    "view VM page":       (404,  404,   404,  404,  200,  200,  404),
    "view VM (API)":      (404,  404,   404,  404,  200,  200,  404),
    "start VM (API)":     (404,  404,   404,  404,  202,  202,  404),
    "shutdown VM (API)":  (404,  404,   404,  404,  202,  202,  404),
    "power off VM (form)": (404, 404,   404,  404,  303,  303,  404),
    "create VM (API)":    (404,  404,   404,  404,  201,  201,  404),
    "create VM (form)":   (404,  404,   404,  404,  303,  303,  404),
    "delete VM (API)":    (404,  404,   404,  404,  202,  202,  404),
    "migrate VM (API)":   (404,  404,   404,  404,  202,  202,  404),
    "VM console page":    (404,  404,   404,  404,  200,  200,  404),
    "request VM (API)":   (404,  404,   404,  404,  201,  201,  404),
    "approve VM request (API)": (404, 404, 404, 404,  202,  202,  404),
    "deny VM request (form)": (404, 404, 404,  404,  303,  303,  404),
    "view VM request page": (404, 404,  404,  404,  200,  200,  404),
    "view storage pool page": (404, 404, 404,  404,  200,  200,  404),
    "view storage server (API)": (404, 404, 404, 404, 200,  200,  404),
    "replication page":   (404,  404,   404,  404,  200,  200,  404),
    "view VM task (API)": (404,  404,   404,  404,  200,  200,  404),
    "view VM task page":  (404,  404,   404,  404,  200,  200,  404),
    "cancel VM task (API)": (404, 404,  404,  404,  200,  200,  404),
    "view site task (API)": (404, 404,  404,  404,  200,  200,  404),
    "someone's smart pool page": (404, 404, 404, 404, 404, 404, 404),
    "someone's API token (API)": (404, 404, 404, 404, 404, 404, 404),
}
# fmt: on


@dataclass
class Place:
    """The objects an action works on, all inside one hardware pool's subtree."""

    top: Pool  # fedora or redhat
    spare: Pool  # an empty hardware pool under it: renamed, moved, deleted
    other: Pool  # another hardware pool under it: where things are moved to
    host: Host  # a host in ``top``
    vm_pool: Pool  # a VM pool under ``top``, where VMs are created
    vm: Vm  # a running VM on ``vm_host``
    stopped_vm: Vm  # a stopped VM on ``vm_host``
    vm_host: Host  # another host in ``top``, with the VMs (they migrate to ``host``)
    network: Network  # a guest network carried by ``top``, with an IP pool
    storage_pool: StoragePool  # a directory storage pool used by ``top``
    #: a profile allowed on ``top``, and bob's pending VM request in ``vm_pool``
    profile_id: int = 0
    vm_request: VmRequest | None = None
    #: a storage server (site-level); the admin's queued tasks on ``vm`` and on the site;
    #: bob's smart pool and API token
    storage_server: StorageServer | None = None
    vm_task: Task | None = None
    site_task: Task | None = None
    bob_smart_pool: Pool | None = None
    bob_token: ApiToken | None = None


def _form(app: Any, url: str, **fields: str) -> Any:
    return app.post(url, {"csrf_token": session_csrf(app), **fields}, expect_errors=True)


def _json(app: Any, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    call = getattr(app, f"{method.lower()}_json")
    return call(url, body or {}, headers=api_headers(app), expect_errors=True)


@dataclass
class Action:
    """How to try an action, and how to tell that it happened."""

    call: Callable[[Any, Place], Any]
    happened: Callable[[Any, Place], bool]


def _pool(dbsession: Any, pool_id: int) -> Pool | None:
    dbsession.expire_all()
    return dbsession.get(Pool, pool_id)


def _created(db: Any, p: Place) -> bool:
    return (
        db.scalar(select(Pool).where(Pool.name == "made", Pool.parent_id == p.top.id)) is not None
    )


def _renamed(db: Any, p: Place) -> bool:
    pool = _pool(db, p.spare.id)
    return pool is not None and pool.name == "renamed"


def _moved(db: Any, p: Place) -> bool:
    pool = _pool(db, p.spare.id)
    return pool is not None and pool.parent_id == p.other.id


def _deleted(db: Any, p: Place) -> bool:
    return _pool(db, p.spare.id) is None


def _host_moved(db: Any, p: Place) -> bool:
    db.expire_all()
    return db.get(Host, p.host.id).pool_id == p.other.id


def _nothing(db: Any, p: Place) -> bool:
    return True


def _task_for(kind: str, which: str) -> Callable[[Any, Place], bool]:
    def happened(db: Any, p: Place) -> bool:
        vm = getattr(p, which)
        return db.scalar(select(Task).where(Task.kind == kind, Task.target_id == vm.id)) is not None

    return happened


def _vm_created(db: Any, p: Place) -> bool:
    return db.scalar(select(Vm).where(Vm.name == "made", Vm.pool_id == p.vm_pool.id)) is not None


def _network_created(db: Any, p: Place) -> bool:
    return db.scalar(select(Network).where(Network.name == f"made-{p.top.name}")) is not None


def _network_deleted(db: Any, p: Place) -> bool:
    db.expire_all()
    return db.get(Network, p.network.id) is None


def _storage_task(kind: str) -> Callable[[Any, Place], bool]:
    def happened(db: Any, p: Place) -> bool:
        return (
            db.scalar(
                select(Task).where(
                    Task.kind == kind,
                    Task.target_type == "storage_pool",
                    Task.target_id == p.storage_pool.id,
                )
            )
            is not None
        )

    return happened


def _vm_effects(db: Any) -> tuple[int, int, list[str]]:
    db.expire_all()
    return (
        len(db.scalars(select(Task.id)).all()),
        len(db.scalars(select(Vm.id)).all()),
        list(db.scalars(select(VmRequest.state).order_by(VmRequest.id))),
    )


def _vm_requested(db: Any, p: Place) -> bool:
    return (
        db.scalar(
            select(VmRequest).where(VmRequest.name == "made", VmRequest.pool_id == p.vm_pool.id)
        )
        is not None
    )


def _request_now(state: str) -> Callable[[Any, Place], bool]:
    def happened(db: Any, p: Place) -> bool:
        db.expire_all()
        assert p.vm_request is not None
        return db.get(VmRequest, p.vm_request.id).state == state

    return happened


def _task_canceled(db: Any, p: Place) -> bool:
    db.expire_all()
    assert p.vm_task is not None
    return db.get(Task, p.vm_task.id).state == TaskState.CANCELED


def _get(url: Callable[[Place], str]) -> Callable[[Any, Place], Any]:
    return lambda a, p: a.get(url(p), expect_errors=True)


ACTIONS: dict[str, Action] = {
    "view pool page": Action(
        lambda a, p: a.get(f"/pools/{p.spare.id}", expect_errors=True), _nothing
    ),
    "view pool (API)": Action(
        lambda a, p: a.get(f"/api/v1/pools/{p.spare.id}", expect_errors=True), _nothing
    ),
    "view host page": Action(
        lambda a, p: a.get(f"/hosts/{p.host.id}", expect_errors=True), _nothing
    ),
    "view host (API)": Action(
        lambda a, p: a.get(f"/api/v1/hosts/{p.host.id}", expect_errors=True), _nothing
    ),
    "host graph (API)": Action(
        lambda a, p: a.get(f"/api/v1/hosts/{p.host.id}/graphs/cpu?range=1d", expect_errors=True),
        _nothing,
    ),
    "VM graph (API)": Action(
        lambda a, p: a.get(f"/api/v1/vms/{p.vm.id}/graphs/disk", expect_errors=True), _nothing
    ),
    "create pool (form)": Action(
        lambda a, p: _form(a, f"/pools/{p.top.id}/children", name="made", kind="hardware"),
        _created,
    ),
    "create pool (API)": Action(
        lambda a, p: _json(
            a, "POST", "/api/v1/pools", {"name": "made", "kind": "hardware", "parent": p.top.id}
        ),
        _created,
    ),
    "rename pool (form)": Action(
        lambda a, p: _form(a, f"/pools/{p.spare.id}/rename", name="renamed"), _renamed
    ),
    "rename pool (API)": Action(
        lambda a, p: _json(a, "PATCH", f"/api/v1/pools/{p.spare.id}", {"name": "renamed"}),
        _renamed,
    ),
    "move pool (form)": Action(
        lambda a, p: _form(a, f"/pools/{p.spare.id}/move", parent=str(p.other.id)), _moved
    ),
    "move pool (API)": Action(
        lambda a, p: _json(a, "PATCH", f"/api/v1/pools/{p.spare.id}", {"parent": p.other.id}),
        _moved,
    ),
    "delete pool (form)": Action(lambda a, p: _form(a, f"/pools/{p.spare.id}/delete"), _deleted),
    "delete pool (API)": Action(
        lambda a, p: a.delete(
            f"/api/v1/pools/{p.spare.id}", headers=api_headers(a), expect_errors=True
        ),
        _deleted,
    ),
    "move host (form)": Action(
        lambda a, p: _form(a, f"/hosts/{p.host.id}/move", pool=str(p.other.id)), _host_moved
    ),
    "move host (API)": Action(
        lambda a, p: _json(a, "PATCH", f"/api/v1/hosts/{p.host.id}", {"pool": p.other.id}),
        _host_moved,
    ),
    "view networks page": Action(lambda a, p: a.get("/networks", expect_errors=True), _nothing),
    "view network (API)": Action(
        lambda a, p: a.get(f"/api/v1/networks/{p.network.id}", expect_errors=True), _nothing
    ),
    "view IP addresses (API)": Action(
        lambda a, p: a.get(
            f"/api/v1/ip-pools/{p.network.ip_pools[0].id}/addresses", expect_errors=True
        ),
        _nothing,
    ),
    "create network (API)": Action(
        lambda a, p: _json(
            a,
            "POST",
            "/api/v1/networks",
            {
                "name": f"made-{p.top.name}",
                "bridge": f"br-{p.top.name}",
                "interface": f"eth-{p.top.name}",
                "cidr": f"10.{210 + p.top.id % 40}.0.0/24",
            },
        ),
        _network_created,
    ),
    "delete network (form)": Action(
        lambda a, p: _form(a, f"/networks/{p.network.id}/delete"), _network_deleted
    ),
    "view storage pool (API)": Action(
        lambda a, p: a.get(f"/api/v1/storage-pools/{p.storage_pool.id}", expect_errors=True),
        _nothing,
    ),
    "refresh storage (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/storage-pools/{p.storage_pool.id}/refresh"),
        _storage_task("storage.pool.refresh"),
    ),
    "create volume (API)": Action(
        lambda a, p: _json(
            a,
            "POST",
            f"/api/v1/storage-pools/{p.storage_pool.id}/volumes",
            {"name": "made.img", "size_gib": 1},
        ),
        _storage_task("storage.volume.create"),
    ),
    "define storage (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/storage-pools/{p.storage_pool.id}/define"),
        _storage_task("storage.pool.define"),
    ),
    "view VM page": Action(lambda a, p: a.get(f"/vms/{p.vm.id}", expect_errors=True), _nothing),
    "view VM (API)": Action(
        lambda a, p: a.get(f"/api/v1/vms/{p.vm.id}", expect_errors=True), _nothing
    ),
    "start VM (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/vms/{p.stopped_vm.id}/start"),
        _task_for("vm.start", "stopped_vm"),
    ),
    "shutdown VM (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/vms/{p.vm.id}/shutdown"),
        _task_for("vm.shutdown", "vm"),
    ),
    "power off VM (form)": Action(
        lambda a, p: _form(a, f"/vms/{p.vm.id}/poweroff"), _task_for("vm.poweroff", "vm")
    ),
    "create VM (API)": Action(
        lambda a, p: _json(
            a,
            "POST",
            "/api/v1/vms",
            {"name": "made", "pool": p.vm_pool.id, "vcpus": 1, "memory_mib": 512},
        ),
        _vm_created,
    ),
    "create VM (form)": Action(
        lambda a, p: _form(
            a, f"/pools/{p.vm_pool.id}/vms", name="made", vcpus="1", memory_mib="512"
        ),
        _vm_created,
    ),
    "delete VM (API)": Action(
        lambda a, p: a.delete(
            f"/api/v1/vms/{p.stopped_vm.id}", headers=api_headers(a), expect_errors=True
        ),
        _task_for("vm.delete", "stopped_vm"),
    ),
    "migrate VM (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/vms/{p.vm.id}/migrate", {"host": p.host.id}),
        _task_for("vm.migrate", "vm"),
    ),
    "VM console page": Action(
        lambda a, p: a.get(f"/vms/{p.vm.id}/console", expect_errors=True), _nothing
    ),
    "request VM (API)": Action(
        lambda a, p: _json(
            a,
            "POST",
            "/api/v1/vm-requests",
            {
                "name": "made",
                "pool": p.vm_pool.id,
                "profile": p.profile_id,
                "vcpus": 1,
                "memory_mib": 512,
                "storage_gib": 5,
                "network": p.network.id,
                "reason": "testing",
            },
        ),
        _vm_requested,
    ),
    "approve VM request (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/vm-requests/{p.vm_request.id}/approve"),
        _request_now("approved"),
    ),
    "deny VM request (form)": Action(
        lambda a, p: _form(a, f"/vm-requests/{p.vm_request.id}/deny", reason="not now"),
        _request_now("denied"),
    ),
    "view VM request page": Action(_get(lambda p: f"/vm-requests/{p.vm_request.id}"), _nothing),
    "view storage pool page": Action(
        _get(lambda p: f"/storage/pools/{p.storage_pool.id}"), _nothing
    ),
    "view storage server (API)": Action(
        _get(lambda p: f"/api/v1/storage-servers/{p.storage_server.id}"), _nothing
    ),
    "replication page": Action(_get(lambda p: "/storage/replication"), _nothing),
    "view VM task (API)": Action(_get(lambda p: f"/api/v1/tasks/{p.vm_task.id}"), _nothing),
    "view VM task page": Action(_get(lambda p: f"/tasks/{p.vm_task.id}"), _nothing),
    "cancel VM task (API)": Action(
        lambda a, p: _json(a, "POST", f"/api/v1/tasks/{p.vm_task.id}/cancel"), _task_canceled
    ),
    "view site task (API)": Action(_get(lambda p: f"/api/v1/tasks/{p.site_task.id}"), _nothing),
    "someone's smart pool page": Action(_get(lambda p: f"/smart/{p.bob_smart_pool.id}"), _nothing),
    "someone's API token (API)": Action(
        _get(lambda p: f"/api/v1/tokens/{p.bob_token.id}"), _nothing
    ),
}

CASES = [pytest.param(action, role, id=f"{action}-{role}") for action in ACTIONS for role in ROLES]


def test_the_table_is_complete():
    for table in (GRANTED, SIBLING):
        assert set(table) == set(ACTIONS)
        assert all(len(row) == len(ROLES) for row in table.values())


def place(top: Pool) -> Place:
    return with_owned_things(with_vm_request(_place(top)))


def with_owned_things(p: Place) -> Place:
    """A storage server, the admin's tasks on ``vm`` and on the site, bob's smart pool and
    API token."""
    from .conftest import user_named

    db = HostFactory._meta.sqlalchemy_session
    p.storage_server = StorageServer(hostname=f"storage-{p.top.name}.example.org")
    db.add(p.storage_server)
    admin, bob = user_named(db, "admin"), user_named(db, "bob")
    p.vm_task = TaskService(ServiceContext.for_session(db)).create(
        "noop", "vm", p.vm.id, user=admin
    )
    p.site_task = TaskService(ServiceContext.for_session(db)).create("noop", "site", 0, user=admin)
    p.bob_smart_pool = SmartPoolService(ServiceContext.for_session(db)).create(
        bob, f"bobs-{p.top.name}"
    )
    p.bob_token = ApiToken(
        user_id=bob.id, name=f"bobs-{p.top.name}", token_hash=f"{p.top.id:064d}", prefix="fct_b"
    )
    db.add(p.bob_token)
    db.flush()
    return p


def with_vm_request(p: Place) -> Place:
    """A dir storage pool and an allowed profile on ``top``, and bob's pending request."""
    from fedoracloud.services.cobbler import ProfileService

    from .conftest import user_named

    db = HostFactory._meta.sqlalchemy_session
    storage = StoragePool(name=f"{p.top.name}-disks", kind="dir", target_path="/disks")
    storage.hardware_pools.append(p.top)
    db.add(storage)
    profile = ProfileService(ServiceContext.for_session(db)).seed_demo()[0]
    ProfileService(ServiceContext.for_session(db)).set_allowed(p.top, [profile.id])
    p.profile_id = profile.id
    grant(db, "bob", p.top, "user")  # bob may request there, so his request may be approved
    p.vm_request = VmRequest(
        user_id=user_named(db, "bob").id,
        pool_id=p.vm_pool.id,
        name=f"asked-{p.top.name}",
        vcpus=1,
        memory_mib=512,
        storage_gib=5,
        profile=profile.name,
        profile_id=profile.id,
        network_id=p.network.id,
        reason="for the permission table",
    )
    db.add(p.vm_request)
    db.flush()
    return p


def _place(top: Pool) -> Place:
    vm_host = HostFactory(pool=top)
    vm_pool = PoolFactory(name=f"{top.name}-vmpool", kind="vm", parent=top)
    return Place(
        top=top,
        spare=PoolFactory(name=f"{top.name}-spare", parent=top),
        other=PoolFactory(name=f"{top.name}-other", parent=top),
        host=HostFactory(pool=top),
        vm_pool=vm_pool,
        vm=VmFactory(pool=vm_pool, host=vm_host, state="running", memory_mib=512),
        stopped_vm=VmFactory(pool=vm_pool, host=vm_host, state="stopped", memory_mib=512),
        vm_host=vm_host,
        storage_pool=StoragePoolFactory(name=f"{top.name}-storage", hardware_pools=[top]),
        network=NetworkFactory(
            name=f"{top.name}-net",
            cidr=f"10.{200 + top.id % 10}.0.0/24",
            hardware_pools=[top],
            ip_range=(f"10.{200 + top.id % 10}.0.10", f"10.{200 + top.id % 10}.0.19"),
        ),
    )


def log_in_as(testapp: Any, dbsession: Any, tree: dict[str, Pool], role: str) -> Any:
    """Log in as someone holding ``role`` (see ROLES)."""
    if role == "site admin":
        return login(testapp, "admin")
    if role == "group admin":
        grant_group(dbsession, "fedora-packagers", tree["fedora"], "admin")  # alice is a member
    elif role != "none":
        grant(dbsession, "alice", tree["fedora"], role)
    return login(testapp, "alice")


def host_pools(dbsession: Any) -> list[tuple[int, int]]:
    dbsession.expire_all()
    return [(row.id, row.pool_id) for row in dbsession.execute(select(Host.id, Host.pool_id))]


@pytest.mark.parametrize("action, role", CASES)
def test_permission_table(testapp, tree, dbsession, action, role):
    places = {"granted": place(tree["fedora"]), "sibling": place(tree["redhat"])}
    app = log_in_as(testapp, dbsession, tree, role)
    for where, table in (("granted", GRANTED), ("sibling", SIBLING)):
        status = table[action][ROLES.index(role)]
        target = places[where]
        before = (snapshot(dbsession), host_pools(dbsession), _vm_effects(dbsession))
        response = ACTIONS[action].call(app, target)
        assert response.status_int == status, f"{where}: {response.text[:300]}"
        if status < 300 or status == 303:
            assert ACTIONS[action].happened(dbsession, target), where
        else:
            after = (snapshot(dbsession), host_pools(dbsession), _vm_effects(dbsession))
            assert after == before, where
            if "(API)" in action:
                code = {403: "forbidden", 404: "not_found"}[status]
                assert response.json["error"]["code"] == code, where


# -- what each role sees ------------------------------------------------------------------------


@pytest.fixture
def fleet(tree):
    """Two hosts in fedora, one in redhat, one in default."""
    return [
        HostFactory(hostname="f1.example.org", pool=tree["fedora"]),
        HostFactory(hostname="f2.example.org", pool=tree["fedora"]),
        HostFactory(hostname="r1.example.org", pool=tree["redhat"]),
        HostFactory(hostname="d1.example.org", pool=tree["default"]),
    ]


def test_without_grants_alice_sees_nothing_anywhere(alice_app, tree, fleet):
    page = alice_app.get("/pools")
    assert tree_names(page) == []
    assert by_testid(page, "empty-state") is not None
    assert host_rows(alice_app.get("/hosts")) == []
    assert alice_app.get("/api/v1/pools").json == {"items": [], "next": None, "total": 0}
    assert alice_app.get("/api/v1/hosts").json == {"items": [], "next": None, "total": 0}
    for pool in tree.values():
        alice_app.get(f"/pools/{pool.id}", status=404)
        assert_api_error(alice_app.get(f"/api/v1/pools/{pool.id}", status=404), 404, "not_found")
    for host in fleet:
        alice_app.get(f"/hosts/{host.id}", status=404)
        assert_api_error(alice_app.get(f"/api/v1/hosts/{host.id}", status=404), 404, "not_found")
    assert text_of(alice_app.get("/pools"), "current-user") == "alice"


def test_a_forbidden_page_looks_like_a_missing_one(alice_app, tree):
    hidden = alice_app.get(f"/pools/{tree['fedora'].id}", status=404)
    missing = alice_app.get("/pools/999999", status=404)
    assert text_of(hidden, "error-message") == text_of(missing, "error-message")
    hidden = alice_app.get(f"/api/v1/pools/{tree['fedora'].id}", status=404)
    missing = alice_app.get("/api/v1/pools/999999", status=404)
    assert hidden.json == missing.json


def test_monitor_on_fedora_sees_fedoras_subtree_only(testapp, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    page = app.get("/pools")
    assert tree_names(page) == ["fedora", "fedora-vms"]
    assert host_rows(app.get("/hosts")) == ["f1.example.org", "f2.example.org"]
    pools = app.get("/api/v1/pools").json
    assert [p["name"] for p in pools["items"]] == ["fedora", "fedora-vms"]
    assert pools["total"] == 2
    assert app.get("/api/v1/hosts").json["total"] == 2
    for name in ("root", "hardware", "default", "redhat", "redhat-vms", "users"):
        app.get(f"/pools/{tree[name].id}", status=404)
    app.get(f"/hosts/{fleet[2].id}", status=404)
    app.get("/hosts", {"pool": str(tree["redhat"].id)}, status=404)


def test_a_refusal_she_can_see_says_not_allowed(testapp, tree, dbsession):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    before = snapshot(dbsession)
    page = _form(app, f"/pools/{tree['fedora'].id}/rename", name="mine")
    assert page.status_int == 403
    assert "Not allowed" in page.text
    assert text_of(page, "error-message") == "You may not do that here."
    answer = _json(app, "PATCH", f"/api/v1/pools/{tree['fedora'].id}", {"name": "mine"})
    assert_api_error(answer, 403, "forbidden", "You may not do that here.")
    assert snapshot(dbsession) == before


def test_monitor_gets_no_forms(testapp, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    page = app.get(f"/pools/{tree['fedora'].id}")
    for form in ("create-form", "rename-form", "move-form", "delete-form"):
        assert by_testid(page, form) is None, form
    assert by_testid(app.get(f"/hosts/{fleet[0].id}"), "move-form") is None


def test_pool_page_breadcrumb_hides_pools_above_the_grant(testapp, tree, dbsession):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    page = app.get(f"/pools/{tree['fedora-vms'].id}")
    crumbs = [a.get_text(strip=True) for a in page.html.select(".pf-v5-c-breadcrumb__link")]
    assert crumbs == ["Pools", "fedora", "fedora-vms"]


def test_admin_on_fedora_creates_there_but_not_in_redhat(testapp, tree, dbsession):
    grant(dbsession, "alice", tree["fedora"], "admin")
    app = login(testapp, "alice")
    page = app.get(f"/pools/{tree['fedora'].id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/children"))
    form["name"] = "alices"
    form["kind"] = "hardware"
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Pool alices created."]
    before = snapshot(dbsession)
    refused = _form(app, f"/pools/{tree['redhat'].id}/children", name="alices", kind="hardware")
    assert refused.status_int == 404
    assert snapshot(dbsession) == before


def test_admin_forms_offer_only_pools_she_can_see(testapp, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["fedora"], "admin")
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    app = login(testapp, "alice")
    page = app.get(f"/pools/{rack.id}")
    options = [o.get_text(strip=True) for o in by_testid(page, "move-form").find_all("option")]
    assert options == ["· · fedora (hardware)"]
    host_page = app.get(f"/hosts/{fleet[0].id}")
    options = [o.get_text(strip=True) for o in by_testid(host_page, "move-form").find_all("option")]
    assert [o.lstrip("· ") for o in options] == ["fedora", "rack"]


def test_moving_into_a_pool_she_only_watches_is_refused(testapp, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["fedora"], "admin")
    grant(dbsession, "alice", tree["redhat"], "monitor")
    app = login(testapp, "alice")
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    before = (snapshot(dbsession), host_pools(dbsession))
    landed = after_redirect(_form(app, f"/pools/{rack.id}/move", parent=str(tree["redhat"].id)))
    assert flashes(landed, "danger") == ["you may not do that in pool 'redhat'"]
    landed = after_redirect(_form(app, f"/hosts/{fleet[0].id}/move", pool=str(tree["redhat"].id)))
    assert flashes(landed, "danger") == ["you may not do that in pool 'redhat'"]
    answer = _json(app, "PATCH", f"/api/v1/pools/{rack.id}", {"parent": tree["redhat"].id})
    assert_api_error(answer, 403, "forbidden", "you may not do that in pool 'redhat'")
    answer = _json(app, "PATCH", f"/api/v1/hosts/{fleet[0].id}", {"pool": tree["redhat"].id})
    assert_api_error(answer, 403, "forbidden", "you may not do that in pool 'redhat'")
    body = {"name": "x", "kind": "hardware", "parent": tree["redhat"].id}
    assert_api_error(_json(app, "POST", "/api/v1/pools", body), 403, "forbidden")
    assert (snapshot(dbsession), host_pools(dbsession)) == before


def test_moving_into_a_pool_she_cannot_see_is_404(testapp, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["fedora"], "admin")
    app = login(testapp, "alice")
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    before = (snapshot(dbsession), host_pools(dbsession))
    assert _form(app, f"/pools/{rack.id}/move", parent=str(tree["redhat"].id)).status_int == 404
    assert _form(app, f"/hosts/{fleet[0].id}/move", pool=str(tree["redhat"].id)).status_int == 404
    answer = _json(app, "PATCH", f"/api/v1/pools/{rack.id}", {"parent": tree["hardware"].id})
    assert_api_error(answer, 404, "not_found")
    assert (snapshot(dbsession), host_pools(dbsession)) == before


def test_deleting_the_pool_of_her_grant_goes_back_to_the_tree(testapp, tree, dbsession):
    lonely = PoolFactory(name="lonely", parent=tree["hardware"])
    grant(dbsession, "alice", lonely, "admin")
    app = login(testapp, "alice")
    response = _form(app, f"/pools/{lonely.id}/delete")
    assert location_path(response) == "/pools"
    landed = response.follow()
    assert flashes(landed, "success") == ["Pool lonely deleted."]
    assert by_testid(landed, "empty-state") is not None


def test_a_grant_on_a_vm_pool_does_not_reach_the_hosts(testapp, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["fedora-vms"], "admin")
    app = login(testapp, "alice")
    assert tree_names(app.get("/pools")) == ["fedora-vms"]
    assert host_rows(app.get("/hosts")) == []
    app.get(f"/hosts/{fleet[0].id}", status=404)
    app.get(f"/pools/{tree['fedora'].id}", status=404)


def test_the_strongest_of_several_grants_wins(testapp, tree, dbsession):
    grant(dbsession, "alice", tree["hardware"], "monitor")
    grant(dbsession, "alice", tree["fedora"], "admin")
    app = login(testapp, "alice")
    assert (
        _form(app, f"/pools/{tree['fedora'].id}/children", name="a", kind="hardware").status_int
        == 303
    )
    assert (
        _form(app, f"/pools/{tree['redhat'].id}/children", name="b", kind="hardware").status_int
        == 403
    )
    assert "hardware" in tree_names(app.get("/pools"))


def test_group_grants_reach_members_only(testapp, tree, dbsession):
    grant_group(dbsession, "fedora-packagers", tree["fedora"], "monitor")
    app = login(testapp, "bob")  # bob is not in fedora-packagers
    assert tree_names(app.get("/pools")) == []
    app.post("/logout", {"csrf_token": csrf_token(app)})
    app = login(testapp, "alice")
    assert tree_names(app.get("/pools")) == ["fedora", "fedora-vms"]


def test_a_super_admin_grant_anywhere_makes_a_super_admin(testapp, tree, dbsession):
    grant(dbsession, "alice", tree["fedora-vms"], "super_admin")
    app = login(testapp, "alice")
    assert text_of(app.get("/pools"), "current-user") == "alice (super admin)"
    assert len(tree_names(app.get("/pools"))) == len(tree)


def test_a_revoked_grant_takes_effect_on_the_next_request(testapp, tree, dbsession):
    row = grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    app.get(f"/pools/{tree['fedora'].id}", status=200)
    dbsession.delete(row)
    dbsession.flush()
    app.get(f"/pools/{tree['fedora'].id}", status=404)


# fmt: off
#: what a page or list shows, by role (the answer of request.has_permission): the Add a
#: host button (host_add), storage servers and replication pairs (site_settings), the
#: approvals inbox in the navigation (approve_access)
SHOWN = {
    #                      none   monitor user   admin  super  site   group
    "add a host button":  (False, False,  False, True,  True,  True,  True),
    "storage servers":    (False, False,  False, False, True,  True,  False),
    "replication pairs":  (False, False,  False, False, True,  True,  False),
    "approvals in nav":   (False, False,  False, False, True,  True,  False),
}
# fmt: on

SHOWN_BY: dict[str, Callable[[Any], bool]] = {
    "add a host button": lambda a: 'data-testid="add-host"' in a.get("/hosts").text,
    "storage servers": lambda a: a.get("/api/v1/storage-servers").json["total"] > 0,
    "replication pairs": lambda a: a.get("/api/v1/storage-replication").json["total"] > 0,
    "approvals in nav": lambda a: 'data-testid="nav-approvals"' in a.get("/pools").text,
}


@pytest.mark.parametrize("role", ROLES)
def test_what_each_role_is_shown(testapp, tree, dbsession, role):
    master = StorageServer(hostname="master.example.org", role="master")
    secondary = StorageServer(hostname="secondary.example.org", role="secondary")
    dbsession.add_all([master, secondary])
    dbsession.flush()
    master.replicates_to_id = secondary.id
    dbsession.flush()
    app = log_in_as(testapp, dbsession, tree, role)
    assert set(SHOWN) == set(SHOWN_BY)
    shown = {what: SHOWN_BY[what](app) for what in SHOWN}
    assert shown == {what: row[ROLES.index(role)] for what, row in SHOWN.items()}
