"""The task pages and API: who sees which task (its target's pool, or their own), state,
progress, who and when on the page, and cancelling."""

from __future__ import annotations

from typing import Any

import pytest

from fedoracloud.models import Task, TaskState
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.tasks import TaskService

from ..conftest import login
from ..factories import HostFactory, VmFactory
from .conftest import api_headers, assert_api_error, by_testid, flashes, grant, text_of, user_named


@pytest.fixture
def tasks(dbsession: Any, tree: dict[str, Any]) -> dict[str, Task]:
    """Tasks on a fedora VM, a redhat VM, a redhat host, the fedora pool, the site; one of
    the redhat ones asked for by alice (whose grant there was taken back since)."""
    alice = user_named(dbsession, "alice")
    admin = user_named(dbsession, "admin")
    fedora_vm = VmFactory(pool=tree["fedora-vms"], name="web01")
    redhat_vm = VmFactory(pool=tree["redhat-vms"], name="rh01")
    redhat_host = HostFactory(pool=tree["redhat"], hostname="rh-node01.example.org")
    service = TaskService(ServiceContext.for_session(dbsession))
    made = {
        "fedora_vm": service.create("noop", "vm", fedora_vm.id, user=admin),
        "redhat_vm": service.create("noop", "vm", redhat_vm.id, user=admin),
        "redhat_host": service.create("noop", "host", redhat_host.id, user=admin),
        "fedora_pool": service.create("noop", "pool", tree["fedora"].id, user=admin),
        "site": service.create("noop", "site", 0, user=admin),
        "alice_redhat": service.create("noop", "vm", redhat_vm.id, {"n": 1}, user=alice),
    }
    return made


def api_ids(app: Any, query: str = "") -> list[int]:
    return [t["id"] for t in app.get(f"/api/v1/tasks{query}").json["items"]]


def test_anonymous_is_asked_to_log_in(testapp, tasks):
    assert testapp.get("/tasks").status_int == 303
    assert_api_error(testapp.get("/api/v1/tasks", expect_errors=True), 401, "unauthorized")
    task = tasks["fedora_vm"]
    assert_api_error(
        testapp.get(f"/api/v1/tasks/{task.id}", expect_errors=True), 401, "unauthorized"
    )


def test_a_super_admin_sees_every_task(admin_app, tasks):
    assert sorted(api_ids(admin_app)) == sorted(t.id for t in tasks.values())
    page = admin_app.get("/tasks")
    assert text_of(page, "total") == f"{len(tasks)} tasks"


def test_a_member_sees_tasks_on_what_they_may_view_and_their_own(alice_app, dbsession, tree, tasks):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    visible = {tasks["fedora_vm"].id, tasks["fedora_pool"].id, tasks["alice_redhat"].id}
    assert set(api_ids(alice_app)) == visible
    body = alice_app.get("/api/v1/tasks").json
    assert body["total"] == 3
    page = alice_app.get("/tasks")
    assert len(page.html.find_all(attrs={"data-testid": "task-row"})) == 3
    assert "rh01" in page.text  # her own task, on a VM she no longer sees
    assert "rh-node01" not in page.text
    for hidden in ("redhat_vm", "redhat_host", "site"):
        task = tasks[hidden]
        assert_api_error(
            alice_app.get(f"/api/v1/tasks/{task.id}", expect_errors=True), 404, "not_found"
        )
        assert alice_app.get(f"/tasks/{task.id}", expect_errors=True).status_int == 404
        response = alice_app.post(
            f"/api/v1/tasks/{task.id}/cancel", headers=api_headers(alice_app), expect_errors=True
        )
        assert_api_error(response, 404, "not_found")
    assert dbsession.get(Task, tasks["redhat_vm"].id).state == TaskState.QUEUED


def test_a_member_without_grants_sees_only_their_own(alice_app, tasks):
    assert api_ids(alice_app) == [tasks["alice_redhat"].id]
    assert api_ids(alice_app, "?mine=1") == [tasks["alice_redhat"].id]


def test_unknown_and_malformed_ids_are_404(admin_app, tasks):
    for path in ("/api/v1/tasks/999999", "/api/v1/tasks/abc", "/api/v1/tasks/-1"):
        assert_api_error(admin_app.get(path, expect_errors=True), 404, "not_found")


def test_filters(admin_app, dbsession, tasks):
    done = tasks["site"]
    done.state = TaskState.FINISHED.value
    dbsession.flush()
    assert api_ids(admin_app, "?state=finished") == [done.id]
    assert set(api_ids(admin_app, "?target_type=vm")) == {
        tasks["fedora_vm"].id,
        tasks["redhat_vm"].id,
        tasks["alice_redhat"].id,
    }
    vm_id = tasks["redhat_vm"].target_id
    assert set(api_ids(admin_app, f"?target_type=vm&target={vm_id}")) == {
        tasks["redhat_vm"].id,
        tasks["alice_redhat"].id,
    }
    assert api_ids(admin_app, "?kind=vm.nothing") == []


@pytest.mark.parametrize(
    "query, text",
    [
        ("?state=sleeping", "unknown state"),
        ("?target=abc", "target must be an id"),
        ("?kind=DROP%20TABLE", "not a task kind"),
        ("?target_type=VM's", "not a target type"),
        ("?page=0", "page must be"),
    ],
)
def test_bad_filters_are_refused_with_a_message(admin_app, tasks, query, text):
    assert_api_error(
        admin_app.get(f"/api/v1/tasks{query}", expect_errors=True), 400, "invalid", text
    )
    page = admin_app.get(f"/tasks{query}", expect_errors=True)
    assert page.status_int == 400 and text in page.text


def test_a_task_shows_state_progress_who_when_and_message(admin_app, dbsession, tasks):
    task = tasks["alice_redhat"]
    task.state = TaskState.RUNNING.value
    task.progress = 40
    task.message = "copying the disk"
    task.attempts = 1
    dbsession.flush()
    data = admin_app.get(f"/api/v1/tasks/{task.id}").json
    assert data["state"] == "running"
    assert data["progress"] == 40
    assert data["message"] == "copying the disk"
    assert data["user"] == "alice"
    assert data["target"]["type"] == "vm" and data["target"]["name"] == "vm rh01"
    assert data["created_at"] and data["started_at"] is None
    assert data["may_cancel"] is True
    page = admin_app.get(f"/tasks/{task.id}")
    assert text_of(page, "fact-state") == "running"
    assert text_of(page, "fact-progress") == "40%"
    assert text_of(page, "fact-message") == "copying the disk"
    assert text_of(page, "fact-user") == "alice"
    assert by_testid(page, "cancel") is not None


def test_cancel_a_queued_task_then_again(alice_app, dbsession, tree, tasks):
    grant(dbsession, "alice", tree["fedora"], "user")
    task = tasks["fedora_vm"]
    response = alice_app.post(f"/api/v1/tasks/{task.id}/cancel", headers=api_headers(alice_app))
    assert response.status_int == 200
    assert response.json["state"] == "canceled"
    assert "alice" in response.json["message"]
    again = alice_app.post(
        f"/api/v1/tasks/{task.id}/cancel", headers=api_headers(alice_app), expect_errors=True
    )
    assert_api_error(again, 409, "conflict", "already canceled")


def test_cancel_a_running_task_asks_it_to_stop(admin_app, dbsession, tasks):
    task = tasks["redhat_host"]
    task.state = TaskState.RUNNING.value
    dbsession.flush()
    response = admin_app.post(f"/api/v1/tasks/{task.id}/cancel", headers=api_headers(admin_app))
    assert response.status_int == 202
    assert response.json["state"] == "running" and response.json["cancel_requested"] is True
    dbsession.refresh(task)
    assert task.cancel_requested


def test_a_monitor_may_view_but_not_cancel(alice_app, dbsession, tree, tasks):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    task = tasks["fedora_vm"]
    page = alice_app.get(f"/tasks/{task.id}")
    assert by_testid(page, "cancel") is None
    response = alice_app.post(
        f"/api/v1/tasks/{task.id}/cancel", headers=api_headers(alice_app), expect_errors=True
    )
    assert_api_error(response, 403, "forbidden")
    dbsession.refresh(task)
    assert task.state == TaskState.QUEUED


def test_the_owner_may_cancel_their_own_task(alice_app, dbsession, tasks):
    task = tasks["alice_redhat"]
    page = alice_app.get(f"/tasks/{task.id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/cancel"))
    response = form.submit()
    assert response.status_int == 303
    shown = response.follow()
    assert flashes(shown, "success") == [f"Task {task.id} canceled."]
    assert text_of(shown, "fact-state") == "canceled"


def test_cancel_without_csrf_is_refused(admin_app, dbsession, tasks):
    task = tasks["fedora_vm"]
    response = admin_app.post(f"/api/v1/tasks/{task.id}/cancel", expect_errors=True)
    assert_api_error(response, 400, "bad_csrf")
    dbsession.refresh(task)
    assert task.state == TaskState.QUEUED


def test_an_outsider_is_sent_to_the_access_page(testapp, tasks):
    login(testapp, "eve")
    assert testapp.get("/tasks").status_int == 303
