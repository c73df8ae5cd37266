"""Graphs of hosts and VMs, read from the RRD files collectd writes (``rrdtool`` bindings).

The collectd server (``fedoracloud::collectd_server``) writes one directory per reporting
host under its DataDir: ``<node hostname>/cpu-N/cpu-<state>.rrd``, ``memory/memory-<kind>.rrd``,
``load/load.rrd``, ``interface-<name>/if_octets.rrd``; and, because the nodes' virt plugin
reports each guest under its libvirt UUID (``HostnameFormat uuid``), one directory per VM:
``<vm uuid>/virt/virt_cpu_total.rrd``, ``disk_octets-<dev>.rrd``, ``if_octets-<iface>.rrd``.

A graph is read for one range (1 h, 1 day, 1 week) with ``rrdtool.fetch`` (AVERAGE) and
averaged into the range's step, so an answer has a few hundred points whatever the RRAs
are.  Nothing on disk yet is "no data yet", never an error; a file rrdtool cannot read is
a clear error naming it (``StatsUnreadable``), never a 500.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import rrdtool
from zope.interface import Interface

from .services import InvalidInput, ServiceError

#: rrdtool's C library parses its arguments with getopt (process-global state): one call
#: at a time, whatever thread of the web server asks
_RRD_LOCK = threading.Lock()
_HOSTNAME = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
#: collectd's per-CPU states, in the order the graphs list them (idle is left out)
CPU_STATES = ("user", "system", "wait", "nice", "softirq", "interrupt", "steal")
MEMORY_KINDS = ("used", "buffered", "cached", "slab_recl", "slab_unrecl", "free")
LOAD_TERMS = (("shortterm", "1 min"), ("midterm", "5 min"), ("longterm", "15 min"))


class StatsUnreadable(ServiceError):
    """A statistics file exists but rrdtool cannot read it (corrupt, truncated, not RRD)."""

    status = 503
    code = "stats_unreadable"


@dataclass(frozen=True)
class GraphRange:
    """A time range a graph covers, and the step its points are averaged into."""

    name: str
    label: str
    seconds: int
    step: int


#: the ranges the UI offers; about 300 points each
RANGES: dict[str, GraphRange] = {
    r.name: r
    for r in (
        GraphRange("1h", "1 hour", 3600, 10),
        GraphRange("1d", "1 day", 86400, 300),
        GraphRange("1w", "1 week", 7 * 86400, 1800),
    )
}
DEFAULT_RANGE = "1h"


@dataclass(frozen=True)
class StatsSettings:
    """``fedoracloud.stats.rrd_dir``: where collectd's RRD files are (the collectd
    server's DataDir, shared with or synced to the UI boxes); by default
    ``fedoracloud.collectd.data_dir``."""

    rrd_dir: str

    @classmethod
    def from_settings(cls, settings: Any) -> StatsSettings:
        """From the app's typed Settings."""
        raw = str(settings.extra.get("fedoracloud.stats.rrd_dir", "") or "").strip()
        return cls(rrd_dir=os.path.abspath(raw or settings.puppet.collectd_data_dir))


@dataclass(frozen=True)
class Series:
    """One line of a graph: its name, unit and ``(unix time, value or None)`` points."""

    name: str
    unit: str
    points: list[tuple[int, float | None]]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "points": [list(p) for p in self.points]}


@dataclass(frozen=True)
class Graph:
    """A graph as the API answers it; ``no_data`` when collectd has not reported yet."""

    graph: str
    title: str
    range: GraphRange
    step: int
    series: list[Series] = field(default_factory=list)

    @property
    def no_data(self) -> bool:
        return not any(v is not None for s in self.series for _, v in s.points)

    def as_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "title": self.title,
            "range": self.range.name,
            "step": self.step,
            "series": [s.as_json() for s in self.series],
            "no_data": self.no_data,
        }


def parse_range(values: list[str]) -> GraphRange:
    """The ``range`` query parameter (given at most once; 1h when absent)."""
    if len(values) > 1:
        raise InvalidInput("give 'range' once", {"field": "range"})
    name = values[0] if values else DEFAULT_RANGE
    graph_range = RANGES.get(name)
    if graph_range is None:
        raise InvalidInput(
            f"range {name[:20]!r} is not one of " + ", ".join(RANGES), {"field": "range"}
        )
    return graph_range


# -- reading RRD files -----------------------------------------------------------------------

#: one value (or None) per step of the window, oldest first
Points = list[float | None]


class _Window:
    """One graph's time window: where it ends, and how rows are averaged into its step."""

    def __init__(self, graph_range: GraphRange, now: float) -> None:
        self.range = graph_range
        self.now = int(now)
        self.end = self.now // graph_range.step * graph_range.step
        self.start = self.end - graph_range.seconds
        self.times = range(self.start + graph_range.step, self.end + 1, graph_range.step)


class _Reader:
    """Reads the files of one graph, relative to the RRD directory (for messages)."""

    def __init__(self, rrd_dir: str, window: _Window) -> None:
        self.rrd_dir = rrd_dir
        self.window = window
        #: the coarsest step of the files read (collectd's Interval, or an RRA's)
        self.rrd_step = 0

    def fetch(self, path: str) -> dict[str, Points]:
        """Each data source of the file, averaged into the window's step."""
        w = self.window
        try:
            with _RRD_LOCK:
                (start, _end, step), names, rows = rrdtool.fetch(
                    path,
                    "AVERAGE",
                    # the finest RRA that covers the range (rrdtool counts back from the
                    # file's last update: ask up to now); averaged into the step below
                    "--resolution",
                    "1",
                    "--start",
                    str(w.now - w.range.seconds),
                    "--end",
                    str(w.now),
                )
        except (rrdtool.OperationalError, rrdtool.ProgrammingError) as exc:
            name = os.path.relpath(path, self.rrd_dir)
            raise StatsUnreadable(
                f"the statistics file {name} cannot be read: {str(exc)[:200]}",
                {"file": name},
            ) from None
        self.rrd_step = max(self.rrd_step, step)
        # row i covers (t - step, t] with t = start + (i + 1) * step; it counts in the
        # window's step that ends at or after t: rows bounds[k] to bounds[k + 1] - 1
        size, width, count = len(w.times), w.range.step, len(rows)
        bounds = [
            max(0, min(count, -(-(k * width + w.start + 1 - start) // step) - 1))
            for k in range(size + 1)
        ]
        spans = list(itertools.pairwise(bounds))
        sources: dict[str, Points] = {}
        for j, name in enumerate(names):
            column = [row[j] for row in rows]
            points: Points = []
            for lo, hi in spans:
                if hi - lo == 1:
                    value = column[lo]
                    points.append(value if value == value else None)  # NaN: unknown
                    continue
                known = [v for v in column[lo:hi] if v is not None and v == v]
                points.append(sum(known) / len(known) if known else None)
            sources[name] = points
        return sources

    def graph(self, kind: GraphKind, series: list[Series]) -> Graph:
        """The graph, in the range's step, or in the files' own when theirs is coarser
        (collectd at a 60 s Interval, say): no 10 s holes between 60 s readings."""
        graph_range = self.window.range
        step = graph_range.step
        if self.rrd_step > step:
            step = -(-self.rrd_step // step) * step
            series = [_coarsen(s, step, self.window) for s in series]
        return Graph(kind.name, kind.title, graph_range, step, series)

    def series(self, name: str, unit: str, points: Points, scale: float = 1.0) -> Series:
        return Series(
            name,
            unit,
            [
                (t, None if v is None else round(v * scale, 6))
                for t, v in zip(self.window.times, points, strict=True)
            ],
        )


def _coarsen(series: Series, step: int, window: _Window) -> Series:
    sums: dict[int, list[float]] = {}
    for t, v in series.points:
        if v is not None:
            sums.setdefault(-(-t // step) * step, []).append(v)
    first = -(-(window.start + 1) // step) * step
    times = range(first, window.end + 1, step)
    points = [(t, round(sum(b) / len(b), 6) if (b := sums.get(t)) else None) for t in times]
    return Series(series.name, series.unit, points)


def _instance(path: str, prefix: str) -> str:
    """``if_octets-vnet0.rrd`` → ``vnet0``; ``interface-eth0`` → ``eth0``."""
    base = os.path.basename(path)
    if base.endswith(".rrd"):
        base = base[:-4]
    return base[len(prefix) :]


def _ordered(found: Iterable[str], order: tuple[str, ...]) -> list[str]:
    known = [k for k in order if k in found]
    return known + sorted(set(found) - set(known))


# -- the graphs -----------------------------------------------------------------------------


def _host_cpu(reader: _Reader, directory: str) -> list[Series]:
    """Per-state CPU use in % of all the host's CPUs (idle left out)."""
    percent = sorted(glob.glob(os.path.join(glob.escape(directory), "cpu", "percent-*.rrd")))
    if percent:  # collectd's cpu plugin with ValuesPercentage true, ReportByCpu false
        found = {_instance(p, "percent-"): p for p in percent}
        return [
            reader.series(state, "%", reader.fetch(found[state])["value"])
            for state in _ordered(found, CPU_STATES)
            if state != "idle"
        ]
    files = glob.glob(os.path.join(glob.escape(directory), "cpu-[0-9]*", "cpu-*.rrd"))
    by_state: dict[str, Points] = {}
    for path in sorted(files):
        state = _instance(path, "cpu-")
        values = reader.fetch(path)["value"]  # jiffies per second, a DERIVE
        total = by_state.get(state)
        if total is None:
            by_state[state] = values
            continue
        by_state[state] = [
            b if a is None else a if b is None else a + b
            for a, b in zip(total, values, strict=True)
        ]
    if not by_state:
        return []
    all_states: Points = [None] * len(reader.window.times)
    for values in by_state.values():
        all_states = [
            b if a is None else a if b is None else a + b
            for a, b in zip(all_states, values, strict=True)
        ]
    return [
        reader.series(
            state,
            "%",
            [
                None if v is None or not whole else 100.0 * v / whole
                for v, whole in zip(by_state[state], all_states, strict=True)
            ],
        )
        for state in _ordered(by_state, CPU_STATES)
        if state != "idle"
    ]


def _host_memory(reader: _Reader, directory: str) -> list[Series]:
    files = glob.glob(os.path.join(glob.escape(directory), "memory", "memory-*.rrd"))
    found = {_instance(p, "memory-"): p for p in files}
    return [
        reader.series(kind, "bytes", reader.fetch(found[kind])["value"])
        for kind in _ordered(found, MEMORY_KINDS)
    ]


def _host_load(reader: _Reader, directory: str) -> list[Series]:
    path = os.path.join(directory, "load", "load.rrd")
    if not os.path.exists(path):
        return []
    sources = reader.fetch(path)
    return [reader.series(label, "load", sources[ds]) for ds, label in LOAD_TERMS if ds in sources]


def _octets(
    reader: _Reader, files: dict[str, str], names: tuple[tuple[str, str], ...]
) -> list[Series]:
    result = []
    for instance in sorted(files):
        sources = reader.fetch(files[instance])
        for ds, label in names:
            if ds in sources:
                result.append(reader.series(f"{instance} {label}", "bytes/s", sources[ds]))
    return result


_RX_TX = (("rx", "received"), ("tx", "sent"))


def _host_interfaces(reader: _Reader, directory: str) -> list[Series]:
    dirs = glob.glob(os.path.join(glob.escape(directory), "interface-*", "if_octets.rrd"))
    files = {_instance(os.path.dirname(p), "interface-"): p for p in dirs}
    return _octets(reader, files, _RX_TX)


def _vm_files(directory: str, prefix: str) -> dict[str, str]:
    paths = glob.glob(os.path.join(glob.escape(directory), "virt", f"{prefix}-*.rrd"))
    return {_instance(p, f"{prefix}-"): p for p in paths}


def _vm_cpu(reader: _Reader, directory: str, vcpus: int) -> list[Series]:
    """CPU time of all the VM's vCPUs in % of what they could use (100 % = all busy)."""
    path = os.path.join(directory, "virt", "virt_cpu_total.rrd")
    if not os.path.exists(path):
        return []
    nanoseconds = reader.fetch(path)["value"]  # CPU ns per second, a DERIVE
    return [reader.series("CPU", "%", nanoseconds, scale=100.0 / 1e9 / max(1, vcpus))]


def _vm_disk(reader: _Reader, directory: str, vcpus: int) -> list[Series]:
    return _octets(
        reader, _vm_files(directory, "disk_octets"), (("read", "read"), ("write", "written"))
    )


def _vm_network(reader: _Reader, directory: str, vcpus: int) -> list[Series]:
    return _octets(reader, _vm_files(directory, "if_octets"), _RX_TX)


@dataclass(frozen=True)
class GraphKind:
    """A graph a host or VM page shows."""

    name: str
    title: str
    read: Callable[..., list[Series]]


HOST_GRAPHS: dict[str, GraphKind] = {
    g.name: g
    for g in (
        GraphKind("cpu", "CPU", _host_cpu),
        GraphKind("memory", "Memory", _host_memory),
        GraphKind("load", "Load average", _host_load),
        GraphKind("interfaces", "Network interfaces", _host_interfaces),
    )
}
VM_GRAPHS: dict[str, GraphKind] = {
    g.name: g
    for g in (
        GraphKind("cpu", "CPU", _vm_cpu),
        GraphKind("disk", "Disk I/O", _vm_disk),
        GraphKind("network", "Network", _vm_network),
    )
}


def _kind(graphs: dict[str, GraphKind], name: str, what: str) -> GraphKind:
    kind = graphs.get(name)
    if kind is None:
        raise InvalidInput(
            f"no graph {name[:40]!r} for a {what}: one of " + ", ".join(graphs),
            {"field": "graph"},
        )
    return kind


class IStatsReader(Interface):
    """Marker for the graphs reader registered with pyramid-services."""


class StatsReader:
    """Reads host and VM graphs from the RRD directory."""

    def __init__(self, settings: StatsSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock

    def _directory(self, name: str) -> str:
        return os.path.join(self.settings.rrd_dir, name)

    def host_graph(self, hostname: str, graph: str, graph_range: GraphRange) -> Graph:
        """One of ``HOST_GRAPHS`` for the host collectd knows as ``hostname``."""
        kind = _kind(HOST_GRAPHS, graph, "host")
        name = hostname.strip().lower()
        if not _HOSTNAME.fullmatch(name):
            raise InvalidInput(f"not a host name: {hostname[:80]!r}")
        reader = _Reader(self.settings.rrd_dir, _Window(graph_range, self.clock()))
        return reader.graph(kind, kind.read(reader, self._directory(name)))

    def vm_graph(self, vm_uuid: str, graph: str, graph_range: GraphRange, vcpus: int = 1) -> Graph:
        """One of ``VM_GRAPHS`` for the VM with this libvirt UUID."""
        kind = _kind(VM_GRAPHS, graph, "VM")
        try:
            name = str(uuidlib.UUID(vm_uuid))
        except ValueError:
            raise InvalidInput(f"not a UUID: {vm_uuid[:80]!r}") from None
        reader = _Reader(self.settings.rrd_dir, _Window(graph_range, self.clock()))
        return reader.graph(kind, kind.read(reader, self._directory(name), vcpus))


def includeme(config: Any) -> None:
    """Read the stats settings once; register the reader (``IStatsReader``)."""
    reader = StatsReader(StatsSettings.from_settings(config.registry["fc_settings"]))
    config.register_service(reader, IStatsReader)
