"""The VM API and pages: creating VMs (bad input refused, nothing written), lifecycle
actions answered 202 with the task or 409 with the reason, the VM page's buttons."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import Task, Vm, VmNic

from ..factories import HostFactory, VmFactory
from .conftest import (
    after_redirect,
    api_headers,
    assert_api_error,
    by_testid,
    flashes,
    grant,
    session_csrf,
    text_of,
)


@pytest.fixture
def hosts(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        "a": HostFactory(pool=tree["fedora"], hostname="a.fedora.example.org"),
        "b": HostFactory(pool=tree["fedora"], hostname="b.fedora.example.org"),
        "r": HostFactory(pool=tree["redhat"], hostname="r.redhat.example.org"),
    }


def _post(app: Any, url: str, body: dict[str, Any] | None = None, status: Any = "*") -> Any:
    return app.post_json(url, body or {}, headers=api_headers(app), status=status)


def _form(page: Any, suffix: str) -> Any:
    return next(f for f in page.forms.values() if f.action.endswith(suffix))


def _counts(dbsession: Any) -> tuple[int, int, int]:
    dbsession.expire_all()
    return tuple(  # type: ignore[return-value]
        dbsession.scalar(select(func.count()).select_from(m)) for m in (Vm, VmNic, Task)
    )


def _body(tree: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {"name": "web01", "pool": tree["fedora-vms"].id, "vcpus": 2, "memory_mib": 2048, **over}


def test_create_through_the_api(admin_app: Any, tree: dict[str, Any], hosts: Any) -> None:
    answer = _post(admin_app, "/api/v1/vms", _body(tree), status=201)
    vm = answer.json
    assert {k: vm[k] for k in ("name", "state", "host", "pool", "vcpus", "memory_mib")} == {
        "name": "web01",
        "state": "pending",
        "host": None,
        "pool": tree["fedora-vms"].id,
        "vcpus": 2,
        "memory_mib": 2048,
    }
    assert vm["allowed_actions"] == ["delete"]
    assert (vm["task"]["kind"], vm["task"]["state"]) == ("vm.create", "queued")
    assert answer.headers["Location"].endswith(f"/api/v1/vms/{vm['id']}")
    again = admin_app.get(f"/api/v1/vms/{vm['id']}").json
    assert again["uuid"] == vm["uuid"] and again["disks"] == [] and again["nics"] == []


@pytest.mark.parametrize(
    ("override", "status", "message"),
    [
        ({"name": "<b>x</b>"}, 400, "a VM name may hold only letters"),
        ({"name": 'a"b'}, 400, "a VM name may hold only letters"),
        ({"name": "a/b"}, 400, "a VM name may hold only letters"),
        ({"name": "x" * 300}, 400, "a VM name has at most 64 characters (this one has 300)"),
        ({"memory_mib": 0}, 400, "memory_mib: more than 0"),
        ({"memory_mib": 10 * 1024 * 1024}, 400, "memory_mib: at most 1048576"),
        ({"vcpus": 64}, 400, "vcpus: 64 is more than the largest host"),
        ({"host": "r"}, 400, "no host"),
        ({"pool": "fedora"}, 400, "VMs live in VM pools; 'fedora' is a hardware pool"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    admin_app: Any,
    tree: dict[str, Any],
    hosts: Any,
    dbsession: Any,
    override: dict[str, Any],
    status: int,
    message: str,
) -> None:
    if override.get("host") == "r":
        override = {"host": hosts["r"].id}
    if override.get("pool") == "fedora":
        override = {"pool": tree["fedora"].id}
    before = _counts(dbsession)
    answer = _post(admin_app, "/api/v1/vms", _body(tree, **override), status=status)
    assert_api_error(answer, status, "invalid")
    assert message in answer.json["error"]["message"]
    assert _counts(dbsession) == before


def test_a_duplicate_name_is_a_conflict(
    admin_app: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    _post(admin_app, "/api/v1/vms", _body(tree), status=201)
    before = _counts(dbsession)
    answer = _post(admin_app, "/api/v1/vms", _body(tree), status=409)
    assert_api_error(answer, 409, "conflict", "pool 'fedora-vms' already has a VM named 'web01'")
    assert _counts(dbsession) == before


def test_actions_answer_202_with_the_task_or_409_with_the_reason(
    admin_app: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=hosts["a"], state="stopped")
    answer = _post(admin_app, f"/api/v1/vms/{vm.id}/suspend", status=409)
    assert_api_error(answer, 409, "conflict", "cannot suspend a VM that is stopped")
    assert answer.json["error"]["details"]["allowed_actions"] == ["start", "delete"]
    answer = _post(admin_app, f"/api/v1/vms/{vm.id}/start", status=202)
    assert (answer.json["kind"], answer.json["target_id"]) == ("vm.start", vm.id)
    shown = admin_app.get(f"/api/v1/vms/{vm.id}").json
    assert (shown["state"], shown["host"]) == ("creating", hosts["a"].id)
    assert shown["allowed_actions"] == ["poweroff"]
    _post(admin_app, f"/api/v1/vms/{vm.id}/explode", status=404)


def test_migration_to_the_same_host_is_refused(
    admin_app: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=hosts["a"], state="running")
    before = _counts(dbsession)
    answer = _post(admin_app, f"/api/v1/vms/{vm.id}/migrate", {"host": hosts["a"].id}, 400)
    assert "already runs on a.fedora.example.org; pick another host" in answer.text
    answer = _post(admin_app, f"/api/v1/vms/{vm.id}/migrate", {"host": hosts["r"].id}, 400)
    assert "between hosts of their hardware pool" in answer.text
    assert _counts(dbsession) == before
    answer = _post(admin_app, f"/api/v1/vms/{vm.id}/migrate", {"host": hosts["b"].id}, 202)
    assert answer.json["args"] == {"host": hosts["b"].id, "source": hosts["a"].id}


def test_migration_needs_admin_on_the_hardware_pool(
    testapp: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    grant(dbsession, "alice", tree["fedora-vms"], "admin")
    app = login_alice(testapp)
    vm = VmFactory(pool=tree["fedora-vms"], host=hosts["a"], state="running")
    answer = _post(app, f"/api/v1/vms/{vm.id}/migrate", {"host": hosts["b"].id}, 403)
    assert "admin role on hardware pool 'fedora'" in answer.json["error"]["message"]


def login_alice(testapp: Any) -> Any:
    from ..conftest import login

    return login(testapp, "alice")


def test_delete_needs_a_stopped_vm(
    admin_app: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=hosts["a"], state="running")
    answer = admin_app.delete(f"/api/v1/vms/{vm.id}", headers=api_headers(admin_app), status=409)
    assert "power it off first" in answer.json["error"]["message"]
    vm.state = "stopped"
    answer = admin_app.delete(
        f"/api/v1/vms/{vm.id}?delete_volumes=true", headers=api_headers(admin_app), status=202
    )
    assert answer.json["args"] == {"delete_volumes": True}


def test_the_vm_page_offers_only_allowed_actions(
    testapp: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    grant(dbsession, "alice", tree["fedora"], "user")
    app = login_alice(testapp)
    vm = VmFactory(pool=tree["fedora-vms"], host=hosts["a"], state="running")
    page = app.get(f"/vms/{vm.id}")
    buttons = [b["data-testid"] for b in by_testid(page, "actions").find_all("button")]
    # a user controls the VM; migrate and delete are for admins
    assert buttons == [
        "action-shutdown",
        "action-poweroff",
        "action-suspend",
        "action-save",
        "action-reboot",
    ]
    assert by_testid(page, "vm-state")["data-state"] == "running"
    assert by_testid(page, "vm-host").get_text(strip=True) == "a.fedora.example.org"
    form = _form(page, f"/vms/{vm.id}/shutdown")
    done = after_redirect(form.submit())
    assert by_testid(done, "vm-state")["data-state"] == "shutting_down"
    assert flashes(done, "success")[0].startswith(f"shutdown asked for {vm.name} (task ")
    tasks = by_testid(done, "tasks").find_all("tr")[1:]
    assert "vm.shutdown" in tasks[0].get_text()
    buttons = [b["data-testid"] for b in by_testid(done, "actions").find_all("button")]
    assert buttons == ["action-poweroff"]


def test_a_refused_form_action_says_why(
    admin_app: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=hosts["a"], state="stopped")
    answer = admin_app.post(
        f"/vms/{vm.id}/suspend", {"csrf_token": session_csrf(admin_app)}, status=303
    )
    page = after_redirect(answer)
    assert flashes(page, "danger") == ["cannot suspend a VM that is stopped"]


def test_the_create_form_on_a_vm_pool_page(
    admin_app: Any, tree: dict[str, Any], hosts: Any, dbsession: Any
) -> None:
    form = _form(admin_app.get(f"/pools/{tree['fedora-vms'].id}"), "/vms")
    form["name"] = "web09"
    form["vcpus"] = "1"
    form["memory_mib"] = "512"
    vm_page = after_redirect(form.submit())
    assert by_testid(vm_page, "vm-name").get_text(strip=True) == "web09"
    assert by_testid(vm_page, "vm-state")["data-state"] == "pending"
    form = _form(admin_app.get(f"/pools/{tree['fedora-vms'].id}"), "/vms")
    form["name"] = "bad<name>"
    before = _counts(dbsession)
    refused = form.submit(status=400)  # the page again, the reason above the form
    assert "a VM name may hold only letters" in text_of(refused, "vm-create-error")
    assert by_testid(refused, "vm-create-form").find("input", id="vm-name")["value"] == "bad<name>"
    assert _counts(dbsession) == before


def test_no_create_form_without_vm_create(
    testapp: Any, tree: dict[str, Any], dbsession: Any
) -> None:
    grant(dbsession, "alice", tree["fedora"], "user")
    page = login_alice(testapp).get(f"/pools/{tree['fedora-vms'].id}")
    assert by_testid(page, "vm-create-form") is None
