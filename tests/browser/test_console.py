"""A person opens a VM's console in the browser: the real TCG guest on the machine's
libvirtd, the app on loopback, the console proxy (websockify with our token plugin) on
loopback, noVNC in Debian's Chromium.  noVNC fires ``connect`` and draws the guest's
screen; a demo VM (libvirt's test driver) says plainly that it has no console."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from fedoracloud.console_proxy import ConsoleProxyServer, ConsoleTokenPlugin, start
from fedoracloud.models import Host, Pool, Vm

from ..console_guest import VncGuest, record_guest, vnc_guest
from .conftest import LiveServer, axe_violations, login, start_live_server, wait_until

pytestmark = pytest.mark.browser

#: pixels of the noVNC canvas that are not black (the guest's text drawn on it)
DRAWN_PIXELS = """() => {
  const canvas = document.querySelector('#fc-console-screen canvas');
  if (!canvas || !canvas.width || !canvas.height) { return 0; }
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] && (data[i] || data[i + 1] || data[i + 2])) { drawn++; }
  }
  return drawn;
}"""


def add_guest_vm(live: LiveServer, guest: VncGuest) -> int:
    """The guest's host (this machine's libvirtd) in the fedora pool and its VM in
    fedora-builders, where jdoe holds the user role; committed, retried while the live
    server's own first writes hold SQLite's lock (SQLite answers "database is locked" at
    once to a reader that wants to write then)."""
    for attempt in range(20):
        try:
            with live.session() as session:
                fedora = session.scalars(select(Pool).where(Pool.name == "fedora")).one()
                builders = session.scalars(select(Pool).where(Pool.name == "fedora-builders")).one()
                return record_guest(
                    session, guest, fedora, builders, "6f1d2c1e-0000-4000-8000-00000000b0de"
                )
        except OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def console_site(
    db_kind: str, tmp_path_factory: Any, tcg_guest: Any, real_libvirt: str
) -> Iterator[tuple[LiveServer, VncGuest, int]]:
    """The app with the console proxy beside it, and the guest's VM in the fedora pool."""
    base = str(tmp_path_factory.mktemp("console-site"))
    proxy = ConsoleProxyServer("127.0.0.1", 0, None)  # the plugin comes with the database
    settings = {"fedoracloud.console.websocket_url": f"ws://127.0.0.1:{proxy.port}/"}
    with (
        vnc_guest(tcg_guest, "fc-test-console-b", base) as guest,
        start_live_server(db_kind, os.path.join(base, "live"), **settings) as live,
    ):
        proxy.token_plugin = ConsoleTokenPlugin(live.app.registry["dbengine"])
        thread = start(proxy)
        try:
            vm_id = add_guest_vm(live, guest)
            yield live, guest, vm_id
        finally:
            proxy.shutdown()
            proxy.server_close()
            thread.join(timeout=5)


@pytest.fixture
def jdoe(browser: Any, console_site: Any) -> Iterator[Any]:
    live = console_site[0]
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    login(page, live, "jdoe")
    yield page
    context.close()


def test_the_console_of_the_real_guest_connects_and_draws(console_site, jdoe):
    live, guest, vm_id = console_site
    page = jdoe
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    page.goto(live.url(f"/vms/{vm_id}/console"))
    page.wait_for_selector("[data-testid=console-status][data-state=connected]")
    assert "connected" in page.evaluate("window.fcConsole.events")  # noVNC's connect event
    assert page.locator("[data-testid=console-status]").inner_text() == (
        f"Connected to {guest.name}."
    )
    # the guest's screen (its kernel writes to the VGA console) is drawn on the canvas
    drawn = wait_until(lambda: page.evaluate(DRAWN_PIXELS) > 200, timeout=20)
    assert drawn
    assert page.locator("[data-testid=console-cad]").is_enabled()
    assert page.locator("[data-testid=console-reconnect]").is_hidden()
    assert axe_violations(page) == []  # no serious or critical accessibility problem
    screenshots = os.environ.get("FEDORACLOUD_SCREENSHOTS", "")  # make screenshots
    if screenshots:
        page.wait_for_timeout(1500)  # the guest's boot log a little further on
        page.screenshot(path=os.path.join(screenshots, "console.png"), full_page=True)
    # the token never was in a URL the browser asked for (the WebSocket's included)
    assert any(url.startswith("ws://127.0.0.1:") for url in requests), requests
    assert all("token" not in url for url in requests), requests


def test_a_demo_vm_says_it_has_no_console(console_site, jdoe):
    live = console_site[0]
    with live.session() as session:
        demo_vm = session.scalars(
            select(Vm)
            .join(Host, Host.id == Vm.host_id)
            .join(Pool, Pool.id == Vm.pool_id)
            .where(Host.libvirt_uri.like("test:%"), Pool.name.like("fedora-%"))
            .order_by(Vm.id)
        ).first()
        assert demo_vm is not None
        demo_id, demo_name = demo_vm.id, demo_vm.name
    page = jdoe
    response = page.goto(live.url(f"/vms/{demo_id}/console"))
    assert response is not None and response.status == 200
    reason = page.locator("[data-testid=console-unavailable-reason]").inner_text()
    assert reason.startswith(f"VM {demo_name} ")
    assert "no real VNC display" in reason or "start it to open its console" in reason
    assert axe_violations(page) == []
