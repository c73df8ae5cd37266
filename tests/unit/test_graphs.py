"""The graphs service (fedoracloud.services.graphs) on RRD files made with rrdtool in
collectd's layout (tests/rrd.py)."""

from __future__ import annotations

import itertools
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rrdtool

from fedoracloud.services import InvalidInput
from fedoracloud.services.graphs import (
    RANGES,
    GraphsService,
    GraphsSettings,
    StatsUnreadable,
    parse_range,
)
from fedoracloud.settings import Settings

from .. import rrd

HOST = "node42.cloud.example.org"
NOW = (int(time.time()) // 1800) * 1800 - 5  # not on a step: the window rounds down


def values(series: dict[str, Any]) -> list[float]:
    return [v for _, v in series["points"] if v is not None]


@pytest.fixture(scope="module")
def rrd_dir(tmp_path_factory: Any) -> Path:
    """A host and a VM that reported for the last three hours, as collectd leaves them."""
    base = tmp_path_factory.mktemp("rrd")
    rrd.write_host(str(base), HOST, NOW, cpus=2, interfaces=("eth0", "eth1"))
    rrd.write_vm(str(base), VM, NOW)
    return base


VM = str(uuid.uuid4())


@pytest.fixture
def reader(rrd_dir: Path) -> GraphsService:
    return GraphsService(GraphsSettings(str(rrd_dir)), clock=lambda: NOW)


def test_host_cpu_is_per_state_percent_of_all_cpus_without_idle(reader: GraphsService) -> None:
    graph = reader.host_graph(HOST, "cpu", RANGES["1h"]).as_json()
    assert (graph["graph"], graph["range"], graph["step"], graph["no_data"]) == (
        "cpu",
        "1h",
        10,
        False,
    )
    by_name = {s["name"]: s for s in graph["series"]}
    assert list(by_name) == ["user", "system", "wait"]  # collectd's order; idle left out
    for name, jiffies in (("user", 20.0), ("system", 10.0), ("wait", 5.0)):
        assert by_name[name]["unit"] == "%"
        assert values(by_name[name]) and all(
            v == pytest.approx(jiffies, abs=0.01) for v in values(by_name[name])
        )
    points = by_name["user"]["points"]
    assert len(points) == 360 and points[-1][0] == NOW // 10 * 10
    assert all(b[0] - a[0] == 10 for a, b in itertools.pairwise(points))


def test_host_memory_load_and_interfaces(reader: GraphsService) -> None:
    memory = {
        s["name"]: s for s in reader.host_graph(HOST, "memory", RANGES["1h"]).as_json()["series"]
    }
    assert list(memory) == ["used", "buffered", "cached", "free"]
    assert set(values(memory["used"])) == {float(4 << 30)}
    assert memory["free"]["unit"] == "bytes"
    load = reader.host_graph(HOST, "load", RANGES["1h"]).as_json()["series"]
    assert [(s["name"], s["unit"], set(values(s))) for s in load] == [
        ("1 min", "load", {0.5}),
        ("5 min", "load", {0.4}),
        ("15 min", "load", {0.3}),
    ]
    interfaces = reader.host_graph(HOST, "interfaces", RANGES["1h"]).as_json()["series"]
    assert [s["name"] for s in interfaces] == [
        "eth0 received",
        "eth0 sent",
        "eth1 received",
        "eth1 sent",
    ]
    assert {round(v) for v in values(interfaces[0])} == {1000}
    assert {round(v) for v in values(interfaces[1])} == {500}
    assert interfaces[0]["unit"] == "bytes/s"


def test_vm_cpu_disk_and_network_from_the_virt_plugin(reader: GraphsService) -> None:
    cpu = reader.vm_graph(VM, "cpu", RANGES["1h"], vcpus=2).as_json()
    assert [s["name"] for s in cpu["series"]] == ["CPU"]
    # half a CPU of two vCPUs: 25 % of what the VM could use
    assert {round(v, 3) for v in values(cpu["series"][0])} == {25.0}
    disk = reader.vm_graph(VM, "disk", RANGES["1h"]).as_json()["series"]
    assert [(s["name"], {round(v) for v in values(s)}) for s in disk] == [
        ("vda read", {4096}),
        ("vda written", {8192}),
    ]
    network = reader.vm_graph(VM.upper(), "network", RANGES["1h"]).as_json()["series"]
    assert [(s["name"], {round(v) for v in values(s)}) for s in network] == [
        ("vnet0 received", {2048}),
        ("vnet0 sent", {1024}),
    ]


@pytest.mark.parametrize(
    ("name", "step", "count"), [("1h", 10, 360), ("1d", 300, 288), ("1w", 1800, 336)]
)
def test_each_range_has_its_step_and_only_the_reported_hours_have_values(
    reader: GraphsService, name: str, step: int, count: int
) -> None:
    graph = reader.host_graph(HOST, "load", RANGES[name]).as_json()
    assert graph["step"] == step
    points = graph["series"][0]["points"]
    assert len(points) == count
    assert all(t % step == 0 for t, _ in points)
    reported = [t for t, v in points if v is not None]
    # three hours of data: all of the hour, an eighth of the day, 1/56 of the week
    assert reported and NOW - reported[0] <= 3 * 3600 + step
    if name != "1h":
        assert points[0][1] is None  # before collectd started


def test_a_host_or_vm_without_files_has_no_data_not_an_error(reader: GraphsService) -> None:
    for graph in ("cpu", "memory", "load", "interfaces"):
        answer = reader.host_graph("new.cloud.example.org", graph, RANGES["1d"]).as_json()
        assert answer["no_data"] is True and answer["series"] == []
    for graph in ("cpu", "disk", "network"):
        answer = reader.vm_graph(str(uuid.uuid4()), graph, RANGES["1w"]).as_json()
        assert answer["no_data"] is True and answer["series"] == []


def test_files_just_created_with_no_value_yet_are_no_data(tmp_path: Path) -> None:
    (tmp_path / HOST / "load").mkdir(parents=True)
    rrdtool.create(  # as collectd makes it before its first value
        str(tmp_path / HOST / "load/load.rrd"),
        *("--step", "10", "--start", str(NOW - 10)),
        *("DS:shortterm:GAUGE:20:0:5000", "RRA:AVERAGE:0.1:1:360"),
    )
    graph = GraphsService(GraphsSettings(str(tmp_path)), clock=lambda: NOW).host_graph(
        HOST, "load", RANGES["1h"]
    )
    assert graph.as_json()["no_data"] is True
    assert graph.as_json()["series"][0]["name"] == "1 min"


def test_a_corrupt_file_is_a_clear_error_naming_it(rrd_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(rrd_dir / HOST, tmp_path / HOST)
    broken = tmp_path / HOST / "load" / "load.rrd"
    broken.write_bytes(broken.read_bytes()[:300])  # truncated
    reader = GraphsService(GraphsSettings(str(tmp_path)), clock=lambda: NOW)
    with pytest.raises(StatsUnreadable) as raised:
        reader.host_graph(HOST, "load", RANGES["1h"])
    assert raised.value.status == 503
    assert "the statistics file node42.cloud.example.org/load/load.rrd cannot be read" in str(
        raised.value
    )
    (tmp_path / HOST / "memory" / "memory-used.rrd").write_text("not an RRD file\n")
    with pytest.raises(StatsUnreadable, match=r"memory/memory-used\.rrd cannot be read"):
        reader.host_graph(HOST, "memory", RANGES["1h"])
    # the other graphs of the host still read
    assert reader.host_graph(HOST, "cpu", RANGES["1h"]).as_json()["no_data"] is False


@pytest.mark.parametrize("raw", [["100y"], ["-1"], ["abc"], [""], ["1H"], ["1h", "1d"]])
def test_absurd_ranges_are_refused_with_the_ones_there_are(raw: list[str]) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_range(raw)
    assert raised.value.details == {"field": "range"}
    if len(raw) == 1:
        assert "is not one of 1h, 1d, 1w" in raised.value.message


def test_the_range_defaults_to_an_hour() -> None:
    assert parse_range([]) is RANGES["1h"]
    assert parse_range(["1w"]).seconds == 7 * 86400


def test_unknown_graphs_and_names_that_are_not_a_host_or_uuid_are_refused(
    reader: GraphsService,
) -> None:
    with pytest.raises(InvalidInput, match="no graph 'disk' for a host: one of cpu, memory"):
        reader.host_graph(HOST, "disk", RANGES["1h"])
    with pytest.raises(InvalidInput, match="no graph 'load' for a VM: one of cpu, disk, network"):
        reader.vm_graph(VM, "load", RANGES["1h"])
    for name in ("../etc", "node/../../x", ".."):
        with pytest.raises(InvalidInput, match="not a host name"):
            reader.host_graph(name, "cpu", RANGES["1h"])
    with pytest.raises(InvalidInput, match="not a UUID"):
        reader.vm_graph("../" + VM, "cpu", RANGES["1h"])


def test_the_rrd_directory_is_read_once_from_the_settings(tmp_path: Path) -> None:
    base = {
        "sqlalchemy.url": "sqlite://",
        "fedoracloud.session_secret": "x" * 20,
        "fedoracloud.htpasswd.file": "/dev/null",
    }
    assert GraphsSettings.from_settings(Settings.from_dict(base)).rrd_dir == "/var/lib/collectd/rrd"
    collectd = {**base, "fedoracloud.collectd.data_dir": "/srv/collectd"}
    assert GraphsSettings.from_settings(Settings.from_dict(collectd)).rrd_dir == "/srv/collectd"
    own = {**collectd, "fedoracloud.stats.rrd_dir": str(tmp_path)}
    assert GraphsSettings.from_settings(Settings.from_dict(own)).rrd_dir == str(tmp_path)
    assert os.path.isabs(
        GraphsSettings.from_settings(
            Settings.from_dict({**base, "fedoracloud.stats.rrd_dir": "rrd"})
        ).rrd_dir
    )


def test_files_coarser_than_the_range_step_give_their_own_step(tmp_path: Path) -> None:
    """collectd at a 60 s Interval: the hour graph has a point a minute, not holes."""
    rrdtool.create(
        str(tmp_path / "load.rrd"),
        *("--step", "60", "--start", str(NOW - 7200)),
        *("DS:shortterm:GAUGE:120:0:5000", "RRA:AVERAGE:0.1:1:1440"),
    )
    rrdtool.update(str(tmp_path / "load.rrd"), *(f"{t}:2.5" for t in range(NOW - 7140, NOW, 60)))
    (tmp_path / HOST / "load").mkdir(parents=True)
    (tmp_path / "load.rrd").rename(tmp_path / HOST / "load" / "load.rrd")
    reader = GraphsService(GraphsSettings(str(tmp_path)), clock=lambda: NOW)
    graph = reader.host_graph(HOST, "load", RANGES["1h"]).as_json()
    assert graph["step"] == 60
    points = graph["series"][0]["points"]
    assert len(points) == 60 and all(t % 60 == 0 for t, _ in points)
    assert [v for _, v in points[1:-1]] == [2.5] * 58


def test_a_cpu_line_is_rrdtool_s_sum_over_the_cpus_even_where_one_has_no_data(
    tmp_path: Path,
) -> None:
    """cpu-0 reported for three hours, cpu-1 only for the last hour: before that, the
    user share is cpu-0's alone, afterwards that of both."""
    base = tmp_path / HOST
    for state, rate in (("user", 30.0), ("idle", 70.0)):
        rrd.write(str(base / f"cpu-0/cpu-{state}.rrd"), [("value", "DERIVE")], [rate], NOW)
    for state, rate in (("user", 10.0), ("idle", 90.0)):
        rrd.write(
            str(base / f"cpu-1/cpu-{state}.rrd"), [("value", "DERIVE")], [rate], NOW, seconds=3600
        )
    graphs = GraphsService(GraphsSettings(str(tmp_path)), clock=lambda: NOW)
    hour = graphs.host_graph(HOST, "cpu", RANGES["1h"]).as_json()["series"]
    assert [s["name"] for s in hour] == ["user"]
    assert {round(v, 3) for v in values(hour[0])} == {20.0}  # (30 + 10) of 200
    day = [
        v for _, v in graphs.host_graph(HOST, "cpu", RANGES["1d"]).as_json()["series"][0]["points"]
    ]
    known = [round(v, 3) for v in day if v is not None]
    assert known[:20] == [30.0] * 20  # the two hours before cpu-1 came
    assert known[-10:] == [20.0] * 10


def test_a_range_averages_rrdtool_s_archive_rows_into_its_steps(tmp_path: Path) -> None:
    """A load that climbs all day, read for a day and a week: each point is the mean of
    the rows of the finest archive covering the range (what rrdtool.fetch answers) that end
    in its step."""
    path = tmp_path / HOST / "load" / "load.rrd"
    path.parent.mkdir(parents=True)
    start = NOW - 2 * 86400
    rrdtool.create(
        str(path),
        *("--step", "10", "--start", str(start - 10)),
        *("DS:shortterm:GAUGE:20:0:U", "DS:midterm:GAUGE:20:0:U", "DS:longterm:GAUGE:20:0:U"),
        *(f"RRA:AVERAGE:0.1:{per}:{rows}" for rows, per in rrd.RRAS),
    )
    updates = [f"{t}:{(t - start) / 3600:.4f}:1:1" for t in range(start, NOW + 1, 10)]
    for i in range(0, len(updates), 2000):
        rrdtool.update(str(path), *updates[i : i + 2000])
    graphs = GraphsService(GraphsSettings(str(tmp_path)), clock=lambda: NOW)
    for name in ("1d", "1w"):
        graph_range = RANGES[name]
        answer = graphs.host_graph(HOST, "load", graph_range).as_json()
        (first, _, step), _, rows = rrdtool.fetch(
            str(path),
            "AVERAGE",
            *("--resolution", "1", "--start", str(NOW - graph_range.seconds), "--end", str(NOW)),
        )
        assert step > 10  # an archive rrdtool consolidated, not the raw readings
        ends = [first + (i + 1) * step for i in range(len(rows))]
        for t, value in answer["series"][0]["points"]:
            inside = [
                row[0]
                for end, row in zip(ends, rows, strict=True)
                if t - answer["step"] < end <= t and row[0] is not None
            ]
            expected = sum(inside) / len(inside) if inside else None
            assert value == pytest.approx(expected, abs=1e-6), (name, t)  # 6 decimals
        assert sum(v is not None for _, v in answer["series"][0]["points"]) > 20
