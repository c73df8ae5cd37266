"""The demo's sample graphs: RRD files in collectd's layout, so that ``make run`` shows
graphs although its fake hosts run no collectd.

``fedoracloud demo`` writes a day of made-up readings (one a minute, as collectd with
``Interval 60``) for each approved demo host (cpu-N, memory, load, interface-<nic>) and each of
its running VMs (virt: CPU, disk, network), under ``fedoracloud.stats.rrd_dir``, and only
when that directory is inside the instance directory (``var/demo-rrd`` in
development.ini): a real collectd DataDir never gets invented numbers.  A README in the
directory says what the files are.  Running the demo again writes them afresh, ending now.
"""

from __future__ import annotations

import math
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rrdtool
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Host, HostState, Vm, VmState
from .services.graphs import GraphsSettings

#: a reading a minute (collectd's Interval 60), a day of them: enough for the 1 h and 1 day
#: graphs, and quick to write for the whole demo
STEP = 60
SECONDS = 24 * 3600
#: collectd's RRAs at a 60 s step (1 h, 1 d, 1 w, 31 d, 366 d; RRARows 1200), AVERAGE only:
#: the graphs read nothing else
RRAS = ((60, 1), (1440, 1), (1260, 8), (1207, 37), (1201, 439))
NOTICE = (
    "Sample statistics written by 'fedoracloud demo' for the demo's fake hosts and VMs.\n"
    "They are made up, not measured: the demo's hosts run no collectd.\n"
)
#: each CPU state's share of a busy CPU (idle is the rest)
CPU_SHARES = {
    "user": 0.7,
    "system": 0.2,
    "wait": 0.06,
    "nice": 0.02,
    "softirq": 0.01,
    "interrupt": 0.01,
    "steal": 0.0,
}
MEMORY_SHARES = {
    "used": 0.45,
    "buffered": 0.03,
    "cached": 0.2,
    "slab_recl": 0.02,
    "slab_unrecl": 0.01,
    "free": 0.29,
}


@dataclass(frozen=True)
class DemoGraphs:
    """What the demo wrote."""

    directory: str
    hosts: int
    vms: int
    files: int


def _wave(seed: str, times: range, period: float = 86400) -> list[float]:
    """0..1 at each time: a smooth curve of its own for each seed, with some wobble."""
    phase = (zlib.crc32(seed.encode()) % 1000) / 1000 * 2 * math.pi
    return [
        0.5
        + 0.4 * math.sin(2 * math.pi * t / period + phase)
        + 0.06 * math.sin(2 * math.pi * t / 1700 + 2 * phase) * math.sin(t / 97)
        for t in times
    ]


class _Writer:
    """Writes collectd-shaped files for one time span."""

    def __init__(self, end: int, seconds: int) -> None:
        self.times = range(end - seconds, end + 1, STEP)
        self.files = 0

    def write(self, path: str, sources: Sequence[tuple[str, str]], *series: list[float]) -> None:
        """One file: GAUGE sources hold their series, DERIVE ones grow by it per second."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        rrdtool.create(
            tmp,
            "--step",
            str(STEP),
            "--start",
            str(self.times[0] - STEP),
            *(f"DS:{name}:{kind}:{2 * STEP}:0:U" for name, kind in sources),
            *(f"RRA:AVERAGE:0.1:{per}:{rows}" for rows, per in RRAS),
        )
        columns = []
        for (_, kind), values in zip(sources, series, strict=True):
            if kind == "DERIVE":
                total, counted = 0.0, []
                for value in values:
                    total += value * STEP
                    counted.append(str(int(total)))
                columns.append(counted)
            else:
                columns.append([f"{v:.4f}" for v in values])
        rrdtool.update(
            tmp,
            *(
                f"{t}:" + ":".join(row)
                for t, row in zip(self.times, zip(*columns, strict=True), strict=True)
            ),
        )
        os.replace(tmp, path)
        self.files += 1


def _host_files(writer: _Writer, directory: str, host: Host) -> None:
    base = os.path.join(directory, host.hostname)
    times = writer.times
    cpus = max(1, host.cpu_count or 1)
    for cpu in range(cpus):
        busy = [5 + 60 * w for w in _wave(f"{host.hostname}/cpu{cpu}", times)]  # % (jiffies/s)
        for state, share in CPU_SHARES.items():
            rates = [b * share for b in busy]
            writer.write(f"{base}/cpu-{cpu}/cpu-{state}.rrd", [("value", "DERIVE")], rates)
        idle = [100.0 - b * sum(CPU_SHARES.values()) for b in busy]
        writer.write(f"{base}/cpu-{cpu}/cpu-idle.rrd", [("value", "DERIVE")], idle)
    total = (host.memory_mib or 16384) * 1024 * 1024
    for kind, share in MEMORY_SHARES.items():
        sizes = [total * share * (0.8 + 0.4 * w) for w in _wave(f"{host.hostname}/{kind}", times)]
        writer.write(f"{base}/memory/memory-{kind}.rrd", [("value", "GAUGE")], sizes)
    level = [cpus * 0.6 * w for w in _wave(f"{host.hostname}/cpu0", times)]
    writer.write(
        f"{base}/load/load.rrd",
        [("shortterm", "GAUGE"), ("midterm", "GAUGE"), ("longterm", "GAUGE")],
        [v * 1.1 for v in level],
        level,
        [v * 0.9 for v in level],
    )
    for nic in host.nics or []:
        rx = [2e6 * w for w in _wave(f"{host.hostname}/{nic.name}", times, 43200)]
        writer.write(
            f"{base}/interface-{nic.name}/if_octets.rrd",
            [("rx", "DERIVE"), ("tx", "DERIVE")],
            rx,
            [v * 0.4 for v in rx],
        )


def _vm_files(writer: _Writer, directory: str, vm: Vm) -> None:
    base = os.path.join(directory, vm.uuid, "virt")
    times = writer.times
    vcpus = max(1, vm.vcpus)
    used = [1e9 * vcpus * (0.05 + 0.7 * w) for w in _wave(f"{vm.uuid}/cpu", times)]  # ns/s
    writer.write(f"{base}/virt_cpu_total.rrd", [("value", "DERIVE")], used)
    for disk in vm.disks or []:
        read = [4e6 * w for w in _wave(f"{vm.uuid}/{disk.target_dev}", times, 21600)]
        writer.write(
            f"{base}/disk_octets-{disk.target_dev}.rrd",
            [("read", "DERIVE"), ("write", "DERIVE")],
            read,
            [v * 0.6 for v in read],
        )
    for index, _nic in enumerate(vm.nics or []):
        rx = [5e5 * w for w in _wave(f"{vm.uuid}/vnet{index}", times, 43200)]
        writer.write(
            f"{base}/if_octets-vnet{index}.rrd",
            [("rx", "DERIVE"), ("tx", "DERIVE")],
            rx,
            [v * 0.5 for v in rx],
        )


def write_demo_graphs(
    dbsession: Session, settings: Any, now: float | None = None, seconds: int = SECONDS
) -> DemoGraphs | None:
    """Sample RRD files (``seconds`` of readings until ``now``) for the demo's approved
    hosts and running VMs; None (nothing written) when the RRD directory is outside the
    instance directory."""
    directory = GraphsSettings.from_settings(settings).rrd_dir
    instance = os.path.abspath(settings.instance_dir)
    if os.path.commonpath([directory, instance]) != instance or directory == instance:
        return None
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "README"), "w", encoding="utf-8") as notice:
        notice.write(NOTICE)
    writer = _Writer(int(now if now is not None else time.time()) // STEP * STEP, seconds)
    hosts = list(
        dbsession.scalars(
            select(Host).where(Host.state == HostState.AVAILABLE).order_by(Host.hostname)
        )
    )
    vms = list(
        dbsession.scalars(
            select(Vm).where(Vm.host_id.in_([h.id for h in hosts]), Vm.state == VmState.RUNNING)
        )
    )
    for host in hosts:
        _host_files(writer, directory, host)
    for vm in vms:
        _vm_files(writer, directory, vm)
    return DemoGraphs(directory, len(hosts), len(vms), writer.files)
