"""Reading a host's graphs in the browser: uPlot draws them from the JSON API, the range
switcher redraws them, a host collectd never reported shows "No data yet".

The app is served with its own RRD directory (``fedoracloud.stats.rrd_dir``), where the
test writes a demo host's and a demo VM's files in collectd's layout (tests/rrd.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fedoracloud.models import Host, Vm

from .. import rrd
from .conftest import LiveServer, inject_axe, login, start_live_server

pytestmark = pytest.mark.browser

REPORTED = "node04.cloud.fedoraproject.org"
QUIET = "node05.cloud.fedoraproject.org"
HOST_GRAPHS = ("cpu", "memory", "load", "interfaces")

#: how many pixels of a canvas are not transparent (uPlot draws axes, grid and lines)
INKED = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { inked++; } }
  return inked;
}"""


@pytest.fixture(scope="module")
def graphs_server(db_kind: str, tmp_path_factory: Any) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("graphs-live")
    rrd_dir = base / "rrd"
    with start_live_server(
        db_kind, str(base), **{"fedoracloud.stats.rrd_dir": str(rrd_dir)}
    ) as live:
        with live.session() as session:
            ids = {h.hostname: h.id for h in session.scalars(select(Host))}
            vm = session.scalars(select(Vm).join(Host).where(Host.hostname == REPORTED)).first()
            assert vm is not None
            live.extras.update(hosts=ids, vm_id=vm.id, vm_uuid=vm.uuid)
        now = int(time.time())
        rrd.write_host(str(rrd_dir), REPORTED, now, cpus=2, interfaces=("eth0", "eth1"))
        rrd.write_vm(str(rrd_dir), live.extras["vm_uuid"], now)
        yield live


@pytest.fixture
def admin(browser: Any, graphs_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(
        base_url=graphs_server.base_url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    login(page, graphs_server, "admin")
    yield page
    context.close()


def panel_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations inside the graphs panel."""
    inject_axe(page)
    result = page.evaluate(
        "async () => await axe.run(document.querySelector('[data-testid=graphs]'),"
        " {resultTypes: ['violations']})"
    )
    return [v["id"] for v in result["violations"] if v.get("impact") in ("serious", "critical")]


def host_page(page: Any, server: LiveServer, hostname: str) -> Any:
    page.goto(server.url(f"/hosts/{server.extras['hosts'][hostname]}"))
    return page.locator("[data-testid=graphs]")


def wait_drawn(panel: Any, graphs: tuple[str, ...]) -> None:
    for graph in graphs:
        panel.locator(f"[data-testid=graph-{graph}][data-state=drawn] canvas").first.wait_for()


def test_a_host_s_graphs_are_drawn_with_uplot(admin: Any, graphs_server: LiveServer) -> None:
    panel = host_page(admin, graphs_server, REPORTED)
    wait_drawn(panel, HOST_GRAPHS)
    for graph in HOST_GRAPHS:
        card = panel.locator(f"[data-testid=graph-{graph}]")
        assert card.locator("canvas").first.evaluate(INKED) > 1000, graph
        assert card.locator("[data-testid=graph-empty]").is_hidden()
    legend = panel.locator("[data-testid=graph-cpu] .u-legend").inner_text()
    assert "user" in legend and "system" in legend and "idle" not in legend
    legend = panel.locator("[data-testid=graph-interfaces] .u-legend").inner_text()
    assert "eth1 sent" in legend
    assert panel_violations(admin) == []


def test_the_range_switcher_redraws_every_graph(admin: Any, graphs_server: LiveServer) -> None:
    panel = host_page(admin, graphs_server, REPORTED)
    wait_drawn(panel, HOST_GRAPHS)
    with admin.expect_response(lambda r: "/graphs/load?range=1w" in r.url) as answer:
        panel.locator("[data-testid=graph-range-1w]").click()
    assert answer.value.ok and answer.value.json()["step"] == 1800
    for graph in HOST_GRAPHS:
        panel.locator(f"[data-testid=graph-{graph}][data-range='1w'][data-state=drawn]").wait_for()
    assert panel.locator("[data-testid=graph-range-1w]").get_attribute("aria-pressed") == "true"
    assert panel.locator("[data-testid=graph-range-1h]").get_attribute("aria-pressed") == "false"


def test_a_host_without_data_says_no_data_yet(admin: Any, graphs_server: LiveServer) -> None:
    panel = host_page(admin, graphs_server, QUIET)
    for graph in HOST_GRAPHS:
        card = panel.locator(f"[data-testid=graph-{graph}][data-state=empty]")
        card.wait_for()
        assert card.locator("[data-testid=graph-empty]").inner_text().startswith("No data yet")
        assert card.locator("canvas").count() == 0
    assert panel.locator("[data-testid=graph-error]:visible").count() == 0


def test_a_vm_s_graphs_are_drawn(admin: Any, graphs_server: LiveServer) -> None:
    admin.goto(graphs_server.url(f"/vms/{graphs_server.extras['vm_id']}"))
    panel = admin.locator("[data-testid=graphs]")
    wait_drawn(panel, ("cpu", "disk", "network"))
    assert "vda written" in panel.locator("[data-testid=graph-disk] .u-legend").inner_text()


def test_an_unreadable_file_shows_its_message_not_a_broken_page(
    admin: Any, graphs_server: LiveServer
) -> None:
    rrd_dir = Path(graphs_server.settings["fedoracloud.stats.rrd_dir"])
    target = rrd_dir / "node06.cloud.fedoraproject.org" / "load" / "load.rrd"
    target.parent.mkdir(parents=True)
    target.write_text("not an RRD file\n")
    panel = host_page(admin, graphs_server, "node06.cloud.fedoraproject.org")
    card = panel.locator("[data-testid=graph-load][data-state=error]")
    card.wait_for()
    assert "load/load.rrd cannot be read" in card.locator("[data-testid=graph-error]").inner_text()
    panel.locator("[data-testid=graph-cpu][data-state=empty]").wait_for()
