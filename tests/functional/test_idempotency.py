"""Retried POSTs do not act twice: ``Idempotency-Key`` on VM creation and VM actions (the
second call gets the first one's VM or task, ``Idempotent-Replayed: true``; a key reused
for something else is a 409), and actions on a VM whose host does not answer are refused
with the reason (409), queuing nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import AuditEvent, Task, Vm

from ..conftest import login
from ..factories import HostFactory, VmFactory
from .conftest import api_headers, assert_api_error, grant


@pytest.fixture
def host(tree: dict[str, Any]) -> Any:
    return HostFactory(pool=tree["fedora"], hostname="a.fedora.example.org")


def _post(app: Any, url: str, body: Any = None, key: str | None = None, status: Any = "*") -> Any:
    headers = api_headers(app)
    if key is not None:
        headers["Idempotency-Key"] = key
    return app.post_json(url, body or {}, headers=headers, status=status)


def _count(dbsession: Any, model: Any, *where: Any) -> int:
    dbsession.expire_all()
    return int(dbsession.scalar(select(func.count()).select_from(model).where(*where)))


def test_a_create_retried_with_its_key_makes_one_vm(
    admin_app: Any, tree: dict[str, Any], host: Any, dbsession: Any
) -> None:
    body = {"name": "web01", "pool": tree["fedora-vms"].id, "vcpus": 1, "memory_mib": 512}
    first = _post(admin_app, "/api/v1/vms", body, key="create-web01", status=201)
    assert "Idempotent-Replayed" not in first.headers
    again = _post(admin_app, "/api/v1/vms", body, key="create-web01", status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.json["id"], again.json["task"]["id"]) == (
        first.json["id"],
        first.json["task"]["id"],
    )
    assert _count(dbsession, Vm, Vm.name == "web01") == 1
    assert _count(dbsession, Task, Task.kind == "vm.create") == 1
    assert _count(dbsession, AuditEvent, AuditEvent.action == "vm.create") == 1
    # without a key, the same body is a second request: refused by the name, nothing made
    refused = _post(admin_app, "/api/v1/vms", body, status=409)
    assert_api_error(refused, 409, "conflict", "already has a VM named 'web01'")


def test_an_action_retried_with_its_key_is_one_task(
    admin_app: Any, tree: dict[str, Any], host: Any, dbsession: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=host, state="stopped")
    first = _post(admin_app, f"/api/v1/vms/{vm.id}/start", key="start-1", status=202)
    # the VM is now 'creating': without the key a second start is refused by its state
    again = _post(admin_app, f"/api/v1/vms/{vm.id}/start", key="start-1", status=202)
    assert again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(dbsession, Task, Task.kind == "vm.start", Task.target_id == vm.id) == 1
    assert_api_error(
        _post(admin_app, f"/api/v1/vms/{vm.id}/start"), 409, "conflict", "cannot start"
    )


def test_a_key_used_for_something_else_is_refused(
    admin_app: Any, tree: dict[str, Any], host: Any, dbsession: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=host, state="running")
    other = VmFactory(pool=tree["fedora-vms"], host=host, state="running")
    _post(admin_app, f"/api/v1/vms/{vm.id}/suspend", key="k1", status=202)
    for url in (f"/api/v1/vms/{vm.id}/reboot", f"/api/v1/vms/{other.id}/suspend"):
        response = _post(admin_app, url, key="k1", status=409)
        assert_api_error(response, 409, "conflict", "this Idempotency-Key was already used")
    assert _count(dbsession, Task) == 1
    too_long = _post(admin_app, f"/api/v1/vms/{vm.id}/reboot", key="x" * 201, status=400)
    assert_api_error(too_long, 400, "invalid", "an idempotency key is 1 to 200")


def test_keys_are_per_user(admin_app: Any, tree: dict[str, Any], host: Any, dbsession: Any) -> None:
    body = {"name": "web02", "pool": tree["fedora-vms"].id, "vcpus": 1, "memory_mib": 512}
    _post(admin_app, "/api/v1/vms", body, key="shared-key", status=201)
    admin_app.reset()  # another person, in another session
    login(admin_app, "alice")
    grant(dbsession, "alice", tree["fedora-vms"], "admin")
    body["name"] = "web03"
    made = _post(admin_app, "/api/v1/vms", body, key="shared-key", status=201)
    assert made.json["name"] == "web03" and "Idempotent-Replayed" not in made.headers


def test_actions_on_a_vm_whose_host_does_not_answer_are_refused(
    admin_app: Any, tree: dict[str, Any], dbsession: Any
) -> None:
    host = HostFactory(
        pool=tree["fedora"],
        hostname="down.fedora.example.org",
        state="unavailable",
        state_reason="connection refused",
    )
    vm = VmFactory(pool=tree["fedora-vms"], host=host, state="unknown")
    for action in ("poweroff", "delete"):
        url = f"/api/v1/vms/{vm.id}" if action == "delete" else f"/api/v1/vms/{vm.id}/{action}"
        if action == "delete":
            response = admin_app.delete(url, headers=api_headers(admin_app), status=409)
        else:
            response = _post(admin_app, url, status=409)
        assert_api_error(
            response,
            409,
            "conflict",
            f"host down.fedora.example.org does not answer (connection refused); cannot {action}",
        )
    assert _count(dbsession, Task) == 0
    dbsession.refresh(vm)
    assert vm.state == "unknown"
