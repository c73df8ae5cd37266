"""What people do in FedoraCloud, in a real browser (Chromium) against the app on loopback:
log in, ask for access and get it, approve a host, make a VM pool, grant a role, create,
start and stop a VM, and watch a task finish, the last two without reloading the page.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from fedoracloud.demo import DemoHost, host_xml
from fedoracloud.models import Enrollment, Host, HostState, Pool, Vm
from fedoracloud.models.meta import utcnow
from fedoracloud.services.context import ServiceContext

from .conftest import PASSWORDS, unique

pytestmark = pytest.mark.browser


def pool_id(live_server: Any, name: str) -> int:
    with live_server.session() as session:
        return session.scalars(select(Pool.id).where(Pool.name == name)).one()


def mark_page(page: Any) -> None:
    """Leave a mark in the page's JavaScript state: a reload would wipe it."""
    page.evaluate("window.__notReloaded = true")


def still_same_page(page: Any) -> bool:
    return page.evaluate("window.__notReloaded === true")


def test_log_in_and_out(live_server: Any, new_page: Any) -> None:
    page = new_page()
    page.goto(live_server.url("/pools"))
    assert page.url.startswith(live_server.url("/login"))  # anonymous: sent to log in
    page.fill("#username", "admin")
    page.fill("#password", "not-the-password")
    page.click("form button[type=submit]")
    expect(page.get_by_test_id("login-error")).to_be_visible()
    page.fill("#password", PASSWORDS["admin"])
    with page.expect_navigation():
        page.click("form button[type=submit]")
    expect(page.get_by_test_id("current-user")).to_have_text("admin (super admin)")
    expect(page.get_by_test_id("nav-approvals")).to_be_visible()
    expect(page.locator("main")).to_contain_text("fedora")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))


def test_newcomer_asks_for_access_and_an_admin_approves(live_server: Any, new_page: Any) -> None:
    newbie = new_page("newbie")
    assert newbie.url.endswith("/access")
    expect(newbie.get_by_test_id("why")).to_contain_text("not a member of sysadmin-cloud")
    newbie.fill("#reason", "I run the Fedora QA composes and need two test VMs.")
    newbie.get_by_role("button", name="Request access").click()
    expect(newbie.get_by_test_id("flash-success")).to_contain_text("sent to the administrators")
    expect(newbie.get_by_test_id("request-pending")).to_be_visible()

    admin = new_page("admin")
    expect(admin.get_by_test_id("approvals-count")).to_have_text(re.compile(r"[1-9]"))
    admin.get_by_test_id("nav-approvals").click()
    row = admin.get_by_test_id("access-request-newbie")
    expect(row).to_contain_text("Fedora QA composes")
    row.get_by_label("Pool").select_option(label="root/hardware/fedora")
    row.get_by_label("Role").select_option("user")
    row.get_by_role("button", name="Approve").click()
    expect(admin.get_by_test_id("flash-success")).to_be_visible()
    expect(admin.get_by_test_id("access-request-newbie")).to_have_count(0)

    newbie.goto(live_server.url("/pools"))
    expect(newbie.get_by_test_id("nav-pools")).to_be_visible()
    expect(newbie.locator("main")).to_contain_text("fedora")
    expect(newbie.locator("main")).not_to_contain_text("redhat")


def test_a_node_enrolls_and_an_admin_approves_it(
    live_server: Any, admin_page: Any, tmp_path: Any
) -> None:
    """Add a host (the page gives the node's command), run that command as a node does
    (the real fedoracloud-node against a fake libvirt host), approve the host that waits."""
    hostname = f"{unique('node')}.browser.test"
    page = admin_page
    page.goto(live_server.url("/hosts/add"))
    form = page.get_by_test_id("add-host-form")
    form.get_by_label("Hardware pool").select_option(label="root/hardware/fedora")
    form.locator("#hostname").fill(hostname)
    form.get_by_role("button", name="Make an enrollment token").click()
    command = page.get_by_test_id("node-command").inner_text().split()
    assert command[:2] == ["fedoracloud-node", "enroll"]
    assert command[command.index("--server") + 1] == live_server.base_url

    xml = tmp_path / "node.xml"
    xml.write_bytes(host_xml(DemoHost(hostname, "", "", HostState.PENDING, ()), 700))
    options = ["--libvirt-uri", f"test://{xml}", "--hostname", hostname]
    options += ["--state-dir", str(tmp_path / "state"), "--poll-interval", "0.2", "--timeout", "60"]
    node = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "fedoracloud.node_agent", *command[1:], *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        row = page.get_by_test_id(f"pending-host-{hostname}")
        deadline = time.monotonic() + 20
        while True:
            page.goto(live_server.url("/approvals"))
            if row.count():
                break
            assert node.poll() is None, node.stdout.read() if node.stdout else ""
            assert time.monotonic() < deadline, "the host never waited for approval"
            time.sleep(0.2)
        expect(row).to_contain_text("8 CPUs, 16.0 GiB")
        row.get_by_label("Hardware pool").select_option(label="root/hardware/fedora")
        row.get_by_role("button", name="Approve").click()
        expect(page.get_by_test_id("flash-success")).to_be_visible()
        expect(page.get_by_test_id(f"pending-host-{hostname}")).to_have_count(0)
        output, _ = node.communicate(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 0, output
    assert "Retrieving certificate." in output
    with live_server.session() as session:
        host = session.scalars(select(Host).where(Host.hostname == hostname)).one()
        # approved: the app now connects to qemu+tls://<host>/, which does not exist here
        assert host.pool.name == "fedora" and host.state in ("available", "unavailable")
        enrollment = session.scalars(select(Enrollment).where(Enrollment.host_id == host.id)).one()
        assert enrollment.state == "approved" and enrollment.cert_serial


def test_admin_creates_a_vm_pool_and_grants_a_role(live_server: Any, admin_page: Any) -> None:
    page = admin_page
    name = unique("qa-vms")
    page.goto(live_server.url(f"/pools/{pool_id(live_server, 'fedora')}"))
    form = page.get_by_test_id("create-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Kind").select_option("vm")
    form.get_by_label("Description").fill("VMs for the QA team")
    form.get_by_role("button", name="Create").click()
    expect(page.get_by_test_id("pool-name")).to_contain_text(name)
    expect(page.get_by_test_id("breadcrumb")).to_contain_text("fedora")

    page.get_by_test_id("pool-permissions").click()
    grant = page.get_by_test_id("grant-form")
    grant.locator("#grant-user").fill("jdoe")
    grant.locator("#grant-role").select_option("admin")
    grant.get_by_role("button", name="Grant").click()
    mine = page.get_by_test_id("grant-jdoe").filter(has_text="this pool")
    expect(mine).to_contain_text("admin")
    with live_server.session() as session:
        pool = session.scalars(select(Pool).where(Pool.name == name)).one()
        assert pool.kind == "vm"


def test_create_start_and_stop_a_vm_watching_it_change(live_server: Any, admin_page: Any) -> None:
    page = admin_page
    name = unique("browser-vm")
    page.goto(live_server.url(f"/pools/{pool_id(live_server, 'fedora-builders')}"))
    form = page.get_by_test_id("vm-create-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("vCPUs").fill("1")
    form.get_by_label("Memory (MiB)").fill("256")
    form.get_by_role("button", name="Create VM").click()
    expect(page.get_by_test_id("vm-name")).to_have_text(name)
    state = page.get_by_test_id("vm-state")
    mark_page(page)
    # the define task runs in the worker; the page follows without a reload
    expect(state).to_have_attribute("data-state", "stopped", timeout=15_000)
    assert still_same_page(page)
    expect(page.get_by_test_id("action-start")).to_be_visible()
    expect(page.get_by_test_id("action-shutdown")).to_have_count(0)

    page.get_by_test_id("action-start").click()
    expect(page.get_by_test_id("flash-success")).to_contain_text("start asked")
    mark_page(page)
    expect(state).to_have_attribute("data-state", "running", timeout=15_000)
    assert still_same_page(page)
    expect(page.get_by_test_id("action-start")).to_have_count(0)

    page.get_by_test_id("action-poweroff").click()
    mark_page(page)
    expect(state).to_have_attribute("data-state", "stopped", timeout=15_000)
    assert still_same_page(page)
    expect(page.locator("[data-testid=vm-task]").first).to_contain_text("finished")
    with live_server.session() as session:
        assert session.scalars(select(Vm.state).where(Vm.name == name)).one() == "stopped"


def test_watch_a_task_finish_without_reloading(live_server: Any, admin_page: Any) -> None:
    from fedoracloud.services.tasks import TaskService

    with live_server.session() as session:
        vm = session.scalars(select(Vm).where(Vm.name == "koji-builder04")).one()
        vm_id = vm.id
        task = TaskService(ServiceContext.for_session(session)).create("vm.poweroff", "vm", vm.id)
        task.next_attempt_at = utcnow() + timedelta(seconds=1)  # the worker waits a moment
        session.flush()
        task_id = task.id
    page = admin_page
    page.goto(live_server.url(f"/tasks/{task_id}"))
    expect(page.get_by_test_id("fact-state")).to_contain_text("queued")
    mark_page(page)
    expect(page.get_by_test_id("fact-state")).to_have_text("finished", timeout=15_000)
    expect(page.get_by_test_id("fact-progress")).to_have_text("100%")
    expect(page.get_by_test_id("cancel-form")).to_have_count(0)
    assert still_same_page(page)

    # the task list follows unfinished tasks too
    with live_server.session() as session:
        task = TaskService(ServiceContext.for_session(session)).create("vm.start", "vm", vm_id)
        task.next_attempt_at = utcnow() + timedelta(seconds=1)
        session.flush()
        task_id = task.id
    page.goto(live_server.url("/tasks"))
    row = page.locator(f"[data-task-id='{task_id}']")
    expect(row.get_by_test_id("task-state")).to_have_text("queued")
    mark_page(page)
    expect(row.get_by_test_id("task-state")).to_have_text("finished", timeout=15_000)
    assert still_same_page(page)
