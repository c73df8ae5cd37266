"""Consoles through the real app: the console page, its one-time tokens (issued for a real
TCG guest's VNC display on the machine's libvirtd), single use, expiry, who may ask."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import AuditEvent, ConsoleToken
from fedoracloud.models.meta import utcnow
from fedoracloud.services.consoles import (
    TOKEN_PROTOCOL,
    ConsoleService,
    consume_token,
    hash_console_token,
)
from fedoracloud.services.context import ServiceContext
from fedoracloud.settings import ConsoleSettings, Settings

from ..conftest import login
from ..console_guest import vnc_guest
from ..factories import HostFactory, VmFactory
from .conftest import api_headers, assert_api_error, by_testid, grant, text_of


def tokens(dbsession: Any) -> int:
    return dbsession.scalar(select(func.count()).select_from(ConsoleToken)) or 0


def issue(app: Any, vm: Any, **kw: Any) -> Any:
    return app.post_json(
        f"/api/v1/vms/{vm.id}/console", {}, headers=api_headers(app), expect_errors=True, **kw
    )


@pytest.fixture
def fedora_user(testapp, tree, dbsession):
    grant(dbsession, "alice", tree["fedora"], "user")
    return login(testapp, "alice")


@pytest.fixture
def demo_vm(tree):
    host = HostFactory(pool=tree["fedora"], libvirt_uri="test:///default", hostname="demo01")
    return VmFactory(pool=tree["fedora-vms"], host=host, state="running", name="demo-vm")


def test_a_stopped_vm_says_to_start_it(fedora_user, tree, dbsession):
    host = HostFactory(pool=tree["fedora"])
    vm = VmFactory(pool=tree["fedora-vms"], host=host, state="stopped", name="web01")
    page = fedora_user.get(f"/vms/{vm.id}/console")
    assert text_of(page, "console-unavailable-reason") == (
        "VM web01 is stopped; start it to open its console."
    )
    assert by_testid(page, "console") is None  # no viewer, no script asking for a token
    response = issue(fedora_user, vm)
    assert_api_error(response, 409, "console_unavailable", "VM web01 is stopped; start it")
    assert tokens(dbsession) == 0


def test_a_test_driver_host_says_it_has_no_real_display(fedora_user, demo_vm, dbsession):
    page = fedora_user.get(f"/vms/{demo_vm.id}/console")
    reason = text_of(page, "console-unavailable-reason")
    assert "demo01, a demo host on libvirt's test driver" in reason
    assert "no real VNC display" in reason
    response = issue(fedora_user, demo_vm)
    assert_api_error(response, 409, "console_unavailable", "libvirt's test driver")
    assert tokens(dbsession) == 0


def test_who_may_open_a_console(testapp, tree, dbsession, demo_vm):
    redhat_host = HostFactory(pool=tree["redhat"], libvirt_uri="test:///default")
    hidden = VmFactory(pool=tree["redhat-vms"], host=redhat_host, state="running")
    grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    # she sees the VM but may not open its console: 403; a VM she cannot see: 404
    assert app.get(f"/vms/{demo_vm.id}/console", expect_errors=True).status_int == 403
    assert_api_error(issue(app, demo_vm), 403, "forbidden")
    assert app.get(f"/vms/{hidden.id}/console", expect_errors=True).status_int == 404
    assert_api_error(issue(app, hidden), 404, "not_found")
    assert_api_error(
        app.post_json("/api/v1/vms/999999/console", {}, headers=api_headers(app), status=404),
        404,
        "not_found",
    )
    assert app.get("/vms/999999/console", expect_errors=True).status_int == 404
    assert tokens(dbsession) == 0


def test_anonymous_callers_are_asked_to_log_in(testapp, demo_vm):
    page = testapp.get(f"/vms/{demo_vm.id}/console", status=303)
    assert "/login" in page.headers["Location"]
    assert_api_error(
        testapp.post_json(f"/api/v1/vms/{demo_vm.id}/console", {}, status=401),
        401,
        "unauthorized",
    )


def test_asking_for_a_token_needs_the_csrf_token(fedora_user, demo_vm, dbsession):
    response = fedora_user.post_json(f"/api/v1/vms/{demo_vm.id}/console", {}, expect_errors=True)
    assert_api_error(response, 400, "bad_csrf")
    response = fedora_user.post_json(
        f"/api/v1/vms/{demo_vm.id}/console",
        {},
        headers={"X-CSRF-Token": "not-the-one"},
        expect_errors=True,
    )
    assert_api_error(response, 400, "bad_csrf")
    assert tokens(dbsession) == 0


def test_tokens_are_single_use_and_expire(tree, dbsession):
    vm = VmFactory(pool=tree["fedora-vms"], state="running")
    service = ConsoleService(
        ServiceContext(
            dbsession,
            Settings(database_url="", session_secret="", console=ConsoleSettings(token_ttl=60)),
            None,
            "192.0.2.7",
        )
    )
    issued = service.mint(vm, "10.5.0.21", 5901)
    row = dbsession.scalars(select(ConsoleToken)).one()
    assert row.token_hash == hash_console_token(issued.token) != issued.token
    assert row.remote_addr == "192.0.2.7"
    assert timedelta(seconds=59) < row.expires_at - utcnow() <= timedelta(seconds=60)
    conn = dbsession.connection()
    assert consume_token(conn, issued.token) == ("10.5.0.21", 5901)
    assert consume_token(conn, issued.token) is None  # replayed
    # an unused token past its 60 s is refused, and stays unused
    late = service.mint(vm, "10.5.0.21", 5901)
    assert consume_token(conn, late.token, now=utcnow() + timedelta(seconds=61)) is None
    assert consume_token(conn, late.token) == ("10.5.0.21", 5901)
    # garbage, a near miss and other types are refused before any query
    for bad in ("", "x" * 43, issued.token[:-1], late.token + "A", None, 42, ["a"]):
        assert consume_token(conn, bad) is None


def test_long_expired_tokens_are_cleaned_up(tree, dbsession):
    vm = VmFactory(pool=tree["fedora-vms"], state="running")
    service = ConsoleService(ServiceContext.for_session(dbsession))
    old = service.mint(vm, "10.5.0.21", 5901)
    dbsession.scalars(select(ConsoleToken)).one().expires_at = utcnow() - timedelta(hours=2)
    dbsession.flush()
    new = service.mint(vm, "10.5.0.21", 5902)
    hashes = set(dbsession.scalars(select(ConsoleToken.token_hash)))
    assert hashes == {hash_console_token(new.token)}
    assert hash_console_token(old.token) not in hashes


# -- a real guest: the live VNC port from libvirt ------------------------------------------


@pytest.fixture(scope="module")
def guest(tcg_guest, real_libvirt, tmp_path_factory):
    with vnc_guest(tcg_guest, "fc-test-console-f", str(tmp_path_factory.mktemp("serial"))) as g:
        yield g


def test_a_running_vm_gets_a_token_for_its_live_vnc_port(fedora_user, tree, dbsession, guest):
    host = HostFactory(pool=tree["fedora"], libvirt_uri=guest.uri)
    vm = VmFactory(
        pool=tree["fedora-vms"], host=host, state="running", uuid=guest.uuid, name=guest.name
    )
    page = fedora_user.get(f"/vms/{vm.id}/console")
    console = by_testid(page, "console")
    assert console["data-token-url"] == f"http://example.com/api/v1/vms/{vm.id}/console"
    assert "token" not in page.text.lower().split("data-token-url")[0][-200:]
    response = issue(fedora_user, vm)
    assert response.status_int == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["token"])
    assert body["subprotocols"] == ["binary", TOKEN_PROTOCOL + body["token"]]
    assert body["websocket_url"] == "/console/"
    assert (body["vm"], body["vm_name"]) == (vm.id, guest.name)
    row = dbsession.scalars(select(ConsoleToken)).one()
    assert (row.target_host, row.target_port) == ("127.0.0.1", guest.port)
    assert 5900 <= guest.port < 65536
    audit = dbsession.scalars(select(AuditEvent).where(AuditEvent.action == "vm.console")).one()
    assert (audit.target_id, audit.username) == (vm.id, "alice")
    conn = dbsession.connection()
    assert consume_token(conn, body["token"]) == ("127.0.0.1", guest.port)
    assert consume_token(conn, body["token"]) is None
    # every ask is a new token
    again = issue(fedora_user, vm)
    assert again.status_int == 201 and again.json["token"] != body["token"]


def test_a_vm_its_host_does_not_know_is_a_clear_refusal(fedora_user, tree, dbsession, guest):
    host = HostFactory(pool=tree["fedora"], libvirt_uri=guest.uri)
    vm = VmFactory(pool=tree["fedora-vms"], host=host, state="running", name="ghost")
    response = issue(fedora_user, vm)
    assert_api_error(response, 409, "console_unavailable", "VM ghost is not on host")
    assert tokens(dbsession) == 0


@pytest.mark.parametrize("role, offered", [("user", True), ("monitor", False)])
def test_the_vm_page_offers_the_console_to_whoever_may_open_it(
    testapp, tree, dbsession, role, offered
):
    host = HostFactory(pool=tree["fedora"])
    running = VmFactory(pool=tree["fedora-vms"], host=host, state="running")
    stopped = VmFactory(pool=tree["fedora-vms"], host=host, state="stopped")
    grant(dbsession, "alice", tree["fedora"], role)
    app = login(testapp, "alice")
    link = by_testid(app.get(f"/vms/{running.id}"), "open-console")
    if offered:
        assert link["href"] == f"http://example.com/vms/{running.id}/console"
    else:
        assert link is None
    assert by_testid(app.get(f"/vms/{stopped.id}"), "open-console") is None
