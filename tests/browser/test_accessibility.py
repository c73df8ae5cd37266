"""An accessibility pass: axe-core (vendored from npm) run in the main pages reports no
serious or critical violation."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from fedoracloud.models import Host, Pool, Task, Vm

from .conftest import axe_violations

pytestmark = pytest.mark.browser


def main_pages(live_server: Any) -> list[str]:
    """The pages a person spends their time on, with real ids from the demo."""
    with live_server.session() as session:
        pool = session.scalars(select(Pool.id).where(Pool.name == "fedora-builders")).one()
        host = session.scalars(
            select(Host.id).where(Host.hostname == "node04.cloud.fedoraproject.org")
        ).one()
        vm = session.scalars(select(Vm.id).where(Vm.name == "koji-builder01")).one()
        task = session.scalars(select(Task.id).order_by(Task.id.desc()).limit(1)).first()
    pages = [
        "/pools",
        f"/pools/{pool}",
        f"/pools/{pool}/permissions",
        "/hosts",
        f"/hosts/{host}",
        "/vms",
        f"/vms/{vm}",
        "/tasks",
        "/approvals",
        "/users",
        "/audit",
        "/account",
    ]
    if task is not None:
        pages.append(f"/tasks/{task}")
    return pages


def describe(violations: list[Any]) -> str:
    return "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']} — "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:3])
        for v in violations
    )


def test_main_pages_have_no_serious_accessibility_violations(
    live_server: Any, admin_page: Any, new_page: Any
) -> None:
    found = {}
    for path in main_pages(live_server):
        admin_page.goto(live_server.url(path))
        violations = axe_violations(admin_page)
        if violations:
            found[path] = violations
    anonymous = new_page()
    anonymous.goto(live_server.url("/login"))
    if violations := axe_violations(anonymous):
        found["/login"] = violations
    assert not found, "axe-core found:\n" + "\n".join(
        f"{path}:\n{describe(v)}" for path, v in found.items()
    )
