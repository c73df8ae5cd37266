"""Screenshots of the main pages for the README: ``make screenshots`` runs this with
``FEDORACLOUD_SCREENSHOTS=docs/screenshots``; without that variable it is skipped.

Each page is checked before its picture is taken (its heading is there, no error page),
so a screenshot never shows a broken page.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from fedoracloud.models import Host, Pool, User, Vm
from fedoracloud.services.context import ServiceContext

pytestmark = pytest.mark.browser

OUT = os.environ.get("FEDORACLOUD_SCREENSHOTS", "")


def _ids(live_server: Any) -> dict[str, int]:
    from fedoracloud.services.smart_pools import SmartPoolService
    from fedoracloud.services.tasks import TaskService

    with live_server.session() as session:
        ids = {
            "pool": session.scalars(select(Pool.id).where(Pool.name == "fedora-builders")).one(),
            "hardware": session.scalars(select(Pool.id).where(Pool.name == "fedora")).one(),
            "host": session.scalars(
                select(Host.id).where(Host.hostname == "node04.cloud.fedoraproject.org")
            ).one(),
            "vm": session.scalars(select(Vm.id).where(Vm.name == "koji-builder01")).one(),
        }
        admin = session.scalars(select(User).where(User.username == "admin")).one()
        smart = SmartPoolService(ServiceContext.for_session(session))
        if not smart.list_for(admin):
            builders = smart.create(admin, "koji-builders")
            smart.add(builders, "vm", ids["vm"])
            smart.add(smart.create(admin, "fedora-hosts"), "host", ids["host"])
        tasks = TaskService(ServiceContext.for_session(session))
        for kind, name in (("vm.poweroff", "koji-builder03"), ("vm.start", "koji-builder03")):
            vm = session.scalars(select(Vm).where(Vm.name == name)).one()
            tasks.create(kind, "vm", vm.id, user=admin)
    return ids


@pytest.mark.skipif(not OUT, reason="set FEDORACLOUD_SCREENSHOTS=DIR (make screenshots)")
def test_screenshots_of_the_main_pages(live_server: Any, new_page: Any) -> None:
    os.makedirs(OUT, exist_ok=True)
    ids = _ids(live_server)
    admin = new_page("admin")
    jdoe = new_page("jdoe")
    anonymous = new_page()
    shots = [
        (anonymous, "/login", "login", "Log in to FedoraCloud"),
        (admin, "/pools", "pool-tree", "Pools"),
        (admin, f"/pools/{ids['pool']}", "vm-pool", "fedora-builders"),
        (admin, f"/pools/{ids['hardware']}/permissions", "permissions", "Permissions"),
        (admin, "/hosts", "hosts", "Hosts"),
        (admin, f"/hosts/{ids['host']}", "host", "node04"),
        (admin, "/vms", "vms", "VMs"),
        (admin, f"/vms/{ids['vm']}", "vm", "koji-builder01"),
        (admin, "/tasks", "tasks", "Tasks"),
        (admin, "/approvals", "approvals", "Approvals"),
        (admin, "/audit", "audit", "Audit log"),
        (admin, "/storage", "storage", "Storage"),
        (admin, "/networks", "networks", "Networks"),
        (jdoe, "/pools", "contributor-pools", "Pools"),
        (jdoe, "/account", "account", "Your account"),
    ]
    for page, path, name, heading in shots:
        page.goto(live_server.url(path))
        expect(page.locator("h1").first).to_contain_text(heading)
        assert page.locator("[data-testid=error-message]").count() == 0, path
        page.wait_for_timeout(400)  # scripts draw (graphs, live parts)
        page.screenshot(path=os.path.join(OUT, f"{name}.png"), full_page=False)
