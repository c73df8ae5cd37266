"""Graphs of hosts and VMs, read from the RRD files collectd writes (``rrdtool`` bindings).

The collectd server (``fedoracloud::collectd_server``) writes one directory per reporting
host under its DataDir: ``<node hostname>/cpu-N/cpu-<state>.rrd``, ``memory/memory-<kind>.rrd``,
``load/load.rrd``, ``interface-<name>/if_octets.rrd``; and, because the nodes' virt plugin
reports each guest under its libvirt UUID (``HostnameFormat uuid``), one directory per VM:
``<vm uuid>/virt/virt_cpu_total.rrd``, ``disk_octets-<dev>.rrd``, ``if_octets-<iface>.rrd``.

A graph is one ``rrdtool.xport`` call: a ``DEF`` per file, read from the finest archive
that covers the range (what collectd's RRAs already consolidated), and a ``CDEF`` sum per
line where a line adds up several files (a host's CPUs); the few columns it exports are
then averaged into the range's step, so an answer has a few hundred points whatever the
RRAs are.  Nothing on disk yet is "no data yet", never an error; a file rrdtool cannot read
is a clear error naming it (``StatsUnreadable``), never a 500.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import rrdtool
from zope.interface import Interface

from . import InvalidInput, ServiceError

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
class GraphsSettings:
    """``fedoracloud.stats.rrd_dir``: where collectd's RRD files are (the collectd
    server's DataDir, shared with or synced to the UI boxes); by default
    ``fedoracloud.collectd.data_dir``."""

    rrd_dir: str

    @classmethod
    def from_settings(cls, settings: Any) -> GraphsSettings:
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


def _def_path(path: str) -> str:
    """A file name as a ``DEF`` spells it (a colon separates the DEF's fields)."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


class _Export:
    """The lines of one graph, each the sum of one data source of one or more files, read
    in one ``rrdtool.xport`` call and averaged into the window's step."""

    def __init__(self, rrd_dir: str, window: _Window) -> None:
        self.rrd_dir = rrd_dir
        self.window = window
        self.paths: list[str] = []
        self.defs: list[str] = []  # the DEFs and CDEFs
        self.lines: list[str] = []  # the name of the DEF or CDEF each line exports
        #: the step of the rows rrdtool answered (collectd's Interval, or an RRA's)
        self.rrd_step = 0

    def line(self, sources: Sequence[tuple[str, str]]) -> int:
        """A line that adds up these ``(file, data source)`` pairs (an unknown value counts
        as nothing, unless all are unknown); its index in what ``read`` answers."""
        names = []
        for path, ds in sources:
            names.append(f"d{len(self.paths)}")
            self.paths.append(path)
            self.defs.append(f"DEF:{names[-1]}={_def_path(path)}:{ds}:AVERAGE")
        if len(names) == 1:
            self.lines.append(names[0])
        else:
            name = f"s{len(self.lines)}"
            self.defs.append(
                f"CDEF:{name}=" + ",".join([names[0], *(f"{n},ADDNAN" for n in names[1:])])
            )
            self.lines.append(name)
        return len(self.lines) - 1

    def sources(self, path: str) -> set[str]:
        """The data sources a file has (a file with several, as ``load.rrd``, may lack one)."""
        try:
            with _RRD_LOCK:
                return set(rrdtool.lastupdate(path)["ds"])
        except (rrdtool.OperationalError, rrdtool.ProgrammingError) as exc:
            raise self._unreadable(str(exc), path) from None

    def read(self) -> list[Points]:
        """Every line, averaged into the window's step (nothing to read: no lines)."""
        if not self.lines:
            return []
        w = self.window
        try:
            with _RRD_LOCK:
                answer = rrdtool.xport(
                    # the finest RRA that covers the range, whole (rrdtool counts back from
                    # each file's last update: ask up to now), not reduced (step 1)
                    *("--start", str(w.now - w.range.seconds), "--end", str(w.now)),
                    *("--step", "1", "--maxrows", str(_MAX_ROWS)),
                    *self.defs,
                    *(f"XPORT:{name}" for name in self.lines),
                )
        except (rrdtool.OperationalError, rrdtool.ProgrammingError) as exc:
            raise self._unreadable(str(exc)) from None
        start, step, rows = answer["meta"]["start"], answer["meta"]["step"], answer["data"]
        self.rrd_step = max(self.rrd_step, step)
        # row i covers (t - step, t] with t = start + (i + 1) * step; it counts in the
        # window's step that ends at or after t: rows bounds[k] to bounds[k + 1] - 1
        width, count = w.range.step, len(rows)
        bounds = [
            max(0, min(count, -(-(k * width + w.start + 1 - start) // step) - 1))
            for k in range(len(w.times) + 1)
        ]
        spans = list(itertools.pairwise(bounds))
        columns: Iterable[Sequence[float | None]] = (
            zip(*rows, strict=True) if rows else ([] for _ in self.lines)
        )
        return [_averaged(column, spans) for column in columns]

    def _unreadable(self, message: str, culprit: str | None = None) -> StatsUnreadable:
        """The error naming the file rrdtool could not read: the one its message names,
        else the first that does not open on its own."""
        culprit = culprit or next((p for p in self.paths if p in message), None)
        if culprit is None:
            for path in dict.fromkeys(self.paths):
                try:
                    with _RRD_LOCK:
                        rrdtool.info(path)
                except (rrdtool.OperationalError, rrdtool.ProgrammingError) as exc:
                    culprit, message = path, str(exc)
                    break
        name = os.path.relpath(culprit or self.paths[0], self.rrd_dir)
        return StatsUnreadable(
            f"the statistics file {name} cannot be read: {message[:200]}", {"file": name}
        )

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
        """A line of the graph, a point per step of the window."""
        return Series(
            name,
            unit,
            [
                (t, None if v is None else round(v * scale, 6))
                for t, v in zip(self.window.times, points, strict=True)
            ],
        )


#: rows an export may answer: a week of a file's finest archive at a 10 s step, and more
_MAX_ROWS = 100_000


def _averaged(column: Sequence[float | None], spans: Iterable[tuple[int, int]]) -> Points:
    """The mean of the known values of each span of rows (None where none is known)."""
    points: Points = []
    for lo, hi in spans:
        if hi - lo == 1:
            points.append(column[lo])
            continue
        known = [v for v in column[lo:hi] if v is not None]
        points.append(sum(known) / len(known) if known else None)
    return points


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


def _host_cpu(export: _Export, directory: str) -> list[Series]:
    """Per-state CPU use in % of all the host's CPUs (idle left out)."""
    percent = sorted(glob.glob(os.path.join(glob.escape(directory), "cpu", "percent-*.rrd")))
    if percent:  # collectd's cpu plugin with ValuesPercentage true, ReportByCpu false
        found = {_instance(p, "percent-"): p for p in percent}
        shown = [s for s in _ordered(found, CPU_STATES) if s != "idle"]
        lines = [export.line([(found[state], "value")]) for state in shown]
        values = export.read()
        return [export.series(s, "%", values[i]) for s, i in zip(shown, lines, strict=True)]
    by_state: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), "cpu-[0-9]*", "cpu-*.rrd"))):
        by_state.setdefault(_instance(path, "cpu-"), []).append(path)
    if not by_state:
        return []
    # jiffies per second (DERIVEs), each state summed over the CPUs by rrdtool
    states = list(by_state)
    lines = [export.line([(p, "value") for p in by_state[state]]) for state in states]
    values = export.read()
    sums = {state: values[i] for state, i in zip(states, lines, strict=True)}
    all_states = [
        sum(known) if (known := [v for v in column if v is not None]) else None
        for column in zip(*sums.values(), strict=True)
    ]
    return [
        export.series(
            state,
            "%",
            [
                None if v is None or not whole else 100.0 * v / whole
                for v, whole in zip(sums[state], all_states, strict=True)
            ],
        )
        for state in _ordered(sums, CPU_STATES)
        if state != "idle"
    ]


def _host_memory(export: _Export, directory: str) -> list[Series]:
    files = glob.glob(os.path.join(glob.escape(directory), "memory", "memory-*.rrd"))
    found = {_instance(p, "memory-"): p for p in files}
    kinds = _ordered(found, MEMORY_KINDS)
    lines = [export.line([(found[kind], "value")]) for kind in kinds]
    values = export.read()
    return [export.series(k, "bytes", values[i]) for k, i in zip(kinds, lines, strict=True)]


def _host_load(export: _Export, directory: str) -> list[Series]:
    path = os.path.join(directory, "load", "load.rrd")
    if not os.path.exists(path):
        return []
    has = export.sources(path)
    lines = [(export.line([(path, ds)]), label) for ds, label in LOAD_TERMS if ds in has]
    values = export.read()
    return [export.series(label, "load", values[i]) for i, label in lines]


def _octets(
    export: _Export, files: dict[str, str], names: tuple[tuple[str, str], ...]
) -> list[Series]:
    lines = []
    for instance in sorted(files):
        has = export.sources(files[instance])
        lines += [
            (export.line([(files[instance], ds)]), f"{instance} {label}")
            for ds, label in names
            if ds in has
        ]
    values = export.read()
    return [export.series(name, "bytes/s", values[i]) for i, name in lines]


_RX_TX = (("rx", "received"), ("tx", "sent"))


def _host_interfaces(export: _Export, directory: str) -> list[Series]:
    dirs = glob.glob(os.path.join(glob.escape(directory), "interface-*", "if_octets.rrd"))
    files = {_instance(os.path.dirname(p), "interface-"): p for p in dirs}
    return _octets(export, files, _RX_TX)


def _vm_files(directory: str, prefix: str) -> dict[str, str]:
    paths = glob.glob(os.path.join(glob.escape(directory), "virt", f"{prefix}-*.rrd"))
    return {_instance(p, f"{prefix}-"): p for p in paths}


def _vm_cpu(export: _Export, directory: str, vcpus: int) -> list[Series]:
    """CPU time of all the VM's vCPUs in % of what they could use (100 % = all busy)."""
    path = os.path.join(directory, "virt", "virt_cpu_total.rrd")
    if not os.path.exists(path):
        return []
    line = export.line([(path, "value")])  # CPU ns per second, a DERIVE
    nanoseconds = export.read()[line]
    return [export.series("CPU", "%", nanoseconds, scale=100.0 / 1e9 / max(1, vcpus))]


def _vm_disk(export: _Export, directory: str, vcpus: int) -> list[Series]:
    return _octets(
        export, _vm_files(directory, "disk_octets"), (("read", "read"), ("write", "written"))
    )


def _vm_network(export: _Export, directory: str, vcpus: int) -> list[Series]:
    return _octets(export, _vm_files(directory, "if_octets"), _RX_TX)


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


class IGraphsService(Interface):
    """Marker for pyramid-services: ``request.find_service(IGraphsService)``."""


class GraphsService:
    """Reads host and VM graphs from the RRD directory."""

    def __init__(self, settings: GraphsSettings, *, clock: Callable[[], float] = time.time) -> None:
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
        export = _Export(self.settings.rrd_dir, _Window(graph_range, self.clock()))
        return export.graph(kind, kind.read(export, self._directory(name)))

    def vm_graph(self, vm_uuid: str, graph: str, graph_range: GraphRange, vcpus: int = 1) -> Graph:
        """One of ``VM_GRAPHS`` for the VM with this libvirt UUID."""
        kind = _kind(VM_GRAPHS, graph, "VM")
        try:
            name = str(uuidlib.UUID(vm_uuid))
        except ValueError:
            raise InvalidInput(f"not a UUID: {vm_uuid[:80]!r}") from None
        export = _Export(self.settings.rrd_dir, _Window(graph_range, self.clock()))
        return export.graph(kind, kind.read(export, self._directory(name), vcpus))
