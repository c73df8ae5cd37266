"""The account page, the task list's sorting, and breadcrumbs along the pool tree."""

from __future__ import annotations

from typing import Any

from ..factories import HostFactory, VmFactory
from .conftest import by_testid, grant, grant_group, text_of


def crumbs(page: Any) -> list[str]:
    nav = by_testid(page, "breadcrumb")
    return [a.get_text(strip=True) for a in nav.select(".pf-v5-c-breadcrumb__link")]


def test_account_page_shows_who_groups_roles_and_links(alice_app: Any, tree: dict, dbsession):
    grant(dbsession, "alice", tree["fedora"], "user")
    grant_group(dbsession, "fedora-packagers", tree["fedora-vms"], "monitor")
    page = alice_app.get("/account")
    assert text_of(page, "account-username") == "alice"
    assert "contributor" in text_of(page, "account-standing")
    groups = text_of(page, "account-groups")
    assert "sysadmin-cloud" in groups and "fedora-packagers" in groups
    roles = [
        " ".join(r.get_text(" ").split()) for r in page.html.select("[data-testid=account-role]")
    ]
    assert roles == [
        "root/hardware/fedora user you",
        "root/hardware/fedora/fedora-vms monitor group fedora-packagers",
    ]
    links = text_of(page, "account-links")
    assert "Your API tokens" in links and "Tasks you asked for" in links
    assert page.html.find("a", href="http://example.com/tasks?mine=1") is not None
    # the user name in the masthead leads here
    assert by_testid(page, "current-user")["href"] == "http://example.com/account"


def test_account_page_of_a_super_admin_without_grants(admin_app: Any):
    page = admin_app.get("/account")
    assert "super admin" in text_of(page, "account-standing")
    assert "You need no grant" in text_of(page, "no-roles")


def test_account_page_needs_a_login(testapp: Any):
    assert testapp.get("/account").status_int == 303


def test_task_list_sorts_by_kind_and_refuses_an_unknown_column(admin_app: Any, tree, dbsession):
    from fedoracloud.models import Task

    for kind in ("vm.stop", "vm.start", "host.refresh"):
        dbsession.add(Task(kind=kind, target_type="pool", target_id=tree["fedora"].id))
    dbsession.flush()
    page = admin_app.get("/tasks?sort=kind")
    kinds = [
        r.find_all("td")[1].get_text(strip=True) for r in page.html.select("[data-testid=task-row]")
    ]
    assert kinds == sorted(kinds) and len(kinds) == 3
    page = admin_app.get("/tasks?sort=-kind")
    kinds = [
        r.find_all("td")[1].get_text(strip=True) for r in page.html.select("[data-testid=task-row]")
    ]
    assert kinds == sorted(kinds, reverse=True)
    bad = admin_app.get("/tasks?sort=nonsense", status=400)
    assert "cannot sort tasks by 'nonsense'" in text_of(bad, "error-message")
    # queued tasks: the list follows them without a reload
    assert by_testid(page, "task-list")["hx-trigger"] == "every 1s"


def test_host_and_vm_pages_have_breadcrumbs_down_the_pool_tree(admin_app: Any, tree):
    host = HostFactory(hostname="crumb.example.org", pool=tree["fedora"])
    vm = VmFactory(name="crumb-vm", pool=tree["fedora-vms"], host=host)
    page = admin_app.get(f"/hosts/{host.id}")
    assert crumbs(page) == [
        "Pools",
        "root",
        "hardware",
        "fedora",
        "crumb.example.org",
    ]
    page = admin_app.get(f"/vms/{vm.id}")
    assert crumbs(page) == [
        "Pools",
        "root",
        "hardware",
        "fedora",
        "fedora-vms",
        "crumb-vm",
    ]


def test_breadcrumbs_leave_out_pools_above_the_grant(alice_app: Any, tree, dbsession):
    grant(dbsession, "alice", tree["fedora"], "user")
    vm = VmFactory(name="crumb-vm2", pool=tree["fedora-vms"])
    page = alice_app.get(f"/vms/{vm.id}")
    assert crumbs(page) == [
        "Pools",
        "fedora",
        "fedora-vms",
        "crumb-vm2",
    ]


def test_people_list_searches_sorts_and_pages(admin_app: Any, dbsession):
    from fedoracloud.models import User

    for n in range(12):
        dbsession.add(User(username=f"person{n:02d}", display_name=f"Person {n:02d}"))
    dbsession.add(User(username="percent", display_name="100% sure"))
    dbsession.flush()
    page = admin_app.get("/users?q=person")
    assert text_of(page, "total") == "12 people"
    rows = [r["data-testid"] for r in page.html.select("[data-testid^=person-]")]
    assert rows == [f"person-person{n:02d}" for n in range(10)]  # page size 10 in the tests
    page = admin_app.get("/users?q=person&sort=-username&page=2")
    rows = [r["data-testid"] for r in page.html.select("[data-testid^=person-]")]
    assert rows == ["person-person01", "person-person00"]
    page = admin_app.get("/users?q=%25")  # % matches itself
    assert text_of(page, "total") == "1 person"
    assert "Nobody matches" in text_of(admin_app.get("/users?q=nobody-at-all"), "empty-state")
    bad = admin_app.get("/users?sort=password", status=400)
    assert "cannot sort people by 'password'" in text_of(bad, "error-message")


def test_token_list_filters_sorts_and_pages(admin_app: Any, dbsession):
    from fedoracloud.models import ApiToken, User
    from fedoracloud.models.meta import utcnow

    admin = dbsession.query(User).filter_by(username="admin").one()
    for n in range(12):
        dbsession.add(
            ApiToken(
                user_id=admin.id,
                name=f"script-{n:02d}",
                token_hash=f"{n:064d}",
                prefix=f"fct_{n:02d}",
                revoked_at=utcnow() if n % 4 == 0 else None,
            )
        )
    dbsession.flush()
    page = admin_app.get("/tokens?status=revoked&sort=name")
    assert text_of(page, "total") == "3 tokens"
    names = [r.find("td").get_text(strip=True) for r in page.html.select("[data-testid=token-row]")]
    assert names == ["script-00", "script-04", "script-08"]
    page = admin_app.get("/tokens?status=active&sort=-name&page=1")
    names = [r.find("td").get_text(strip=True) for r in page.html.select("[data-testid=token-row]")]
    assert text_of(page, "total") == "9 tokens" and names[0] == "script-11" and len(names) == 9
    assert by_testid(admin_app.get("/tokens?sort=name"), "pagination") is not None
    bad = admin_app.get("/tokens?status=stolen", status=400)
    assert "unknown token status 'stolen'" in text_of(bad, "error-message")


def test_audit_log_reads_oldest_first_on_request(admin_app: Any, tree):
    from ..conftest import csrf_token

    for name in ("first-token", "second-token"):
        admin_app.post("/tokens", {"name": name, "csrf_token": csrf_token(admin_app)})
    newest = admin_app.get("/audit?action=token.")
    oldest = admin_app.get("/audit?action=token.&sort=at")
    rows = newest.html.select("[data-testid=audit-row]")
    assert len(rows) == 2 and "second-token" in rows[0].get_text()
    assert "first-token" in oldest.html.select("[data-testid=audit-row]")[0].get_text()
    bad = admin_app.get("/audit?sort=username", status=400)
    assert "sorts by time only" in text_of(bad, "error-message")


def test_pool_page_shows_fifty_vms_and_links_to_all(admin_app: Any, tree):
    host = HostFactory(hostname="many.example.org", pool=tree["fedora"])
    for n in range(55):
        VmFactory(name=f"many-{n:02d}", pool=tree["fedora-vms"], host=host)
    page = admin_app.get(f"/pools/{tree['fedora'].id}")
    rows = by_testid(page, "vms").select("tbody tr")
    assert len(rows) == 50 and rows[0].find("td").get_text(strip=True) == "many-00"
    link = by_testid(page, "all-vms")
    assert link.get_text(strip=True) == "All 55 VMs in fedora"
    assert link["href"] == f"http://example.com/vms?pool={tree['fedora'].id}"
