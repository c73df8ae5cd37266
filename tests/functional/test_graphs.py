"""Graphs through the real app: ``/api/v1/hosts/{id}/graphs/{graph}``,
``/api/v1/vms/{id}/graphs/{graph}`` and the graphs panel of the host and VM pages, on RRD
files written in collectd's layout (tests/rrd.py) under the app's ``fedoracloud.stats.rrd_dir``."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fedoracloud.services.graphs import GraphsSettings

from .. import rrd
from ..factories import HostFactory, VmFactory
from .conftest import assert_api_error, by_testid, grant


@pytest.fixture
def rrd_dir(app: Any) -> Iterator[str]:
    """The app's RRD directory; what a test writes there is removed after it."""
    directory = GraphsSettings.from_settings(app.registry["fc_settings"]).rrd_dir
    os.makedirs(directory, exist_ok=True)
    before = set(os.listdir(directory))
    yield directory
    for name in set(os.listdir(directory)) - before:
        shutil.rmtree(os.path.join(directory, name))


@pytest.fixture
def reported(rrd_dir: str, tree: dict[str, Any]) -> dict[str, Any]:
    """A fedora host and a VM on it that collectd reported for three hours; a redhat host
    and VM with data too; a fedora host without any data yet."""
    now = int(time.time())
    made: dict[str, Any] = {}
    for pool in ("fedora", "redhat"):
        host = HostFactory(pool=tree[pool], state="available")
        vm = VmFactory(pool=tree[f"{pool}-vms"], host=host, state="running", vcpus=1)
        rrd.write_host(rrd_dir, host.hostname, now, cpus=1)
        rrd.write_vm(rrd_dir, vm.uuid, now)
        made[pool], made[f"{pool}-vm"] = host, vm
    made["quiet"] = HostFactory(pool=tree["fedora"], state="available")
    made["quiet-vm"] = VmFactory(pool=tree["fedora-vms"], state="stopped")
    return made


def values(series: dict[str, Any]) -> set[float]:
    return {round(v, 2) for _, v in series["points"] if v is not None}


def test_a_host_graph_has_the_real_points(admin_app: Any, reported: dict[str, Any]) -> None:
    host = reported["fedora"]
    answer = admin_app.get(f"/api/v1/hosts/{host.id}/graphs/cpu?range=1h").json
    assert answer["graph"] == "cpu" and answer["range"] == "1h" and answer["step"] == 10
    assert answer["no_data"] is False
    for series in answer["series"]:  # [unix time, value] pairs, a step apart
        times = [t for t, _ in series["points"]]
        assert all(len(p) == 2 and isinstance(p[1], float | None) for p in series["points"])
        assert all(isinstance(t, int) for t in times) and times == sorted(times)
        assert {b - a for a, b in itertools.pairwise(times)} == {10}
    assert {s["name"]: values(s) for s in answer["series"]} == {
        "user": {20.0},
        "system": {10.0},
        "wait": {5.0},
    }
    load = admin_app.get(f"/api/v1/hosts/{host.id}/graphs/load").json  # 1h by default
    assert load["range"] == "1h" and [values(s) for s in load["series"]] == [{0.5}, {0.4}, {0.3}]
    memory = admin_app.get(f"/api/v1/hosts/{host.id}/graphs/memory?range=1w").json
    assert memory["step"] == 1800 and values(memory["series"][0]) == {float(4 << 30)}
    interfaces = admin_app.get(f"/api/v1/hosts/{host.id}/graphs/interfaces?range=1d").json
    assert [s["name"] for s in interfaces["series"]] == ["eth0 received", "eth0 sent"]


def test_a_vm_graph_comes_from_the_virt_plugin_files(
    admin_app: Any, reported: dict[str, Any]
) -> None:
    vm = reported["fedora-vm"]
    cpu = admin_app.get(f"/api/v1/vms/{vm.id}/graphs/cpu?range=1h").json
    assert cpu["no_data"] is False and values(cpu["series"][0]) == {50.0}  # 0.5 s/s, 1 vCPU
    disk = admin_app.get(f"/api/v1/vms/{vm.id}/graphs/disk?range=1d").json
    assert [(s["name"], s["unit"]) for s in disk["series"]] == [
        ("vda read", "bytes/s"),
        ("vda written", "bytes/s"),
    ]
    network = admin_app.get(f"/api/v1/vms/{vm.id}/graphs/network").json
    assert [values(s) for s in network["series"]] == [{2048.0}, {1024.0}]


def test_no_data_yet_is_an_answer_not_an_error(admin_app: Any, reported: dict[str, Any]) -> None:
    for graph in ("cpu", "memory", "load", "interfaces"):
        answer = admin_app.get(f"/api/v1/hosts/{reported['quiet'].id}/graphs/{graph}").json
        assert (answer["no_data"], answer["series"]) == (True, [])
    for graph in ("cpu", "disk", "network"):
        answer = admin_app.get(f"/api/v1/vms/{reported['quiet-vm'].id}/graphs/{graph}?range=1w")
        assert (answer.json["no_data"], answer.json["series"]) == (True, [])


@pytest.mark.parametrize("raw", ["100y", "-1", "abc", "", "1H", "1h%00", "1h%3B1d", "1%20h"])
def test_an_absurd_range_is_a_clear_400(admin_app: Any, reported: dict[str, Any], raw: str) -> None:
    host, vm = reported["fedora"], reported["fedora-vm"]
    for url in (f"/api/v1/hosts/{host.id}/graphs/cpu", f"/api/v1/vms/{vm.id}/graphs/cpu"):
        answer = admin_app.get(f"{url}?range={raw}", status=400)
        assert_api_error(answer, 400, "invalid")
        assert "range" in answer.text and "1h, 1d, 1w" in answer.text


def test_range_given_twice_is_refused(admin_app: Any, reported: dict[str, Any]) -> None:
    url = f"/api/v1/hosts/{reported['fedora'].id}/graphs/load?range=1h&range=1w"
    assert_api_error(admin_app.get(url, status=400), 400, "invalid", "range")


def test_an_unknown_graph_is_a_clear_400(admin_app: Any, reported: dict[str, Any]) -> None:
    host, vm = reported["fedora"], reported["fedora-vm"]
    answer = admin_app.get(f"/api/v1/hosts/{host.id}/graphs/disk", status=400)
    assert_api_error(answer, 400, "invalid")
    assert "cpu, memory, load, interfaces" in answer.text
    answer = admin_app.get(f"/api/v1/vms/{vm.id}/graphs/load?range=1d", status=400)
    assert_api_error(answer, 400, "invalid")
    assert "cpu, disk, network" in answer.text


@pytest.mark.parametrize("host_id", ["999999", "0", "abc", "1e3", "-1", "9" * 30])
def test_an_unknown_host_or_vm_is_a_404(
    admin_app: Any, reported: dict[str, Any], host_id: str
) -> None:
    for url in (f"/api/v1/hosts/{host_id}/graphs/cpu", f"/api/v1/vms/{host_id}/graphs/cpu"):
        assert_api_error(admin_app.get(url, status=404), 404, "not_found")


def test_who_may_not_view_the_pool_gets_a_404(
    alice_app: Any, dbsession: Any, reported: dict[str, Any]
) -> None:
    grant(dbsession, "alice", reported["fedora"].pool, "monitor")
    assert alice_app.get(f"/api/v1/hosts/{reported['fedora'].id}/graphs/cpu").json["series"]
    assert alice_app.get(f"/api/v1/vms/{reported['fedora-vm'].id}/graphs/disk").json["series"]
    for url in (
        f"/api/v1/hosts/{reported['redhat'].id}/graphs/cpu",
        f"/api/v1/hosts/{reported['redhat'].id}/graphs/nonsense?range=100y",
        f"/api/v1/vms/{reported['redhat-vm'].id}/graphs/network",
    ):
        assert_api_error(alice_app.get(url, status=404), 404, "not_found")


def test_anonymous_callers_are_asked_to_log_in(testapp: Any, reported: dict[str, Any]) -> None:
    answer = testapp.get(f"/api/v1/hosts/{reported['fedora'].id}/graphs/cpu", status=401)
    assert_api_error(answer, 401, "unauthorized")


def test_a_corrupt_file_is_a_clear_503_naming_it(
    admin_app: Any, reported: dict[str, Any], rrd_dir: str
) -> None:
    host = reported["fedora"]
    with open(os.path.join(rrd_dir, host.hostname, "load", "load.rrd"), "r+b") as broken:
        broken.truncate(200)
    answer = admin_app.get(f"/api/v1/hosts/{host.id}/graphs/load", status=503)
    assert_api_error(answer, 503, "stats_unreadable", f"{host.hostname}/load/load.rrd")
    assert answer.json["error"]["details"] == {"file": f"{host.hostname}/load/load.rrd"}
    assert admin_app.get(f"/api/v1/hosts/{host.id}/graphs/cpu").json["no_data"] is False


def test_the_host_and_vm_pages_show_the_graphs_panel(
    admin_app: Any, reported: dict[str, Any]
) -> None:
    host, vm = reported["fedora"], reported["fedora-vm"]
    page = admin_app.get(f"/hosts/{host.id}")
    panel = by_testid(page, "graphs")
    cards = panel.select("[data-graph-url]")
    assert [c["data-graph-url"] for c in cards] == [
        f"http://example.com/api/v1/hosts/{host.id}/graphs/{g}"
        for g in ("cpu", "memory", "load", "interfaces")
    ]
    assert [b["data-range"] for b in panel.select("button[data-range]")] == ["1h", "1d", "1w"]
    assert panel.select_one("button.pf-m-selected")["data-range"] == "1h"
    assert "No data yet" in panel.text  # the empty state the script reveals
    scripts = [s["src"] for s in page.html.select("script[src]")]
    assert any(s.endswith("uPlot.iife.min.js") for s in scripts)
    assert any(s.endswith("/static/graphs.js") for s in scripts)
    vm_panel = by_testid(admin_app.get(f"/vms/{vm.id}"), "graphs")
    assert [c["data-graph-url"].rsplit("/", 1)[1] for c in vm_panel.select("[data-graph-url]")] == [
        "cpu",
        "disk",
        "network",
    ]
    for asset in ("graphs.js", "graphs.css", "vendor/uplot/uPlot.iife.min.js"):
        assert admin_app.get(f"/static/{asset}").status_int == 200
