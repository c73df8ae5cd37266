"""RRD files for the graph tests, written with rrdtool exactly where and how collectd's
``rrdtool`` plugin writes them (collectd 5.12: step = Interval, heartbeat 2 x step, data
sources ``value`` / ``rx``+``tx`` / ``read``+``write`` / ``shortterm``…, AVERAGE, MIN and
MAX RRAs for an hour, a day, a week, a month and a year), at constant known rates so a
test can check the numbers the app shows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import rrdtool

STEP = 10
#: collectd's RRAs for the default RRATimespans (1 h, 1 d, 1 w, 31 d, 366 d) at a 10 s step
#: with RRARows 1200: steps per row = floor(span / (1200 x step)) (at least 1), rows =
#: ceil(span / (steps per row x step)); as (rows, steps per row)
RRAS = ((360, 1), (1235, 7), (1210, 50), (1202, 223), (1201, 2635))

#: what the fake host and VM report, per second (DERIVEs) or as they are (GAUGEs)
CPU_JIFFIES = {"user": 20.0, "system": 10.0, "wait": 5.0, "idle": 65.0}
MEMORY = {"used": 4 << 30, "buffered": 1 << 30, "cached": 2 << 30, "free": 9 << 30}
LOAD = (0.5, 0.4, 0.3)
IF_OCTETS = (1000.0, 500.0)
VM_CPU_NS = 5e8  # half of one CPU
VM_DISK = (4096.0, 8192.0)
VM_IF = (2048.0, 1024.0)


def write(
    path: str,
    sources: Sequence[tuple[str, str]],
    values: Sequence[float],
    end: int,
    seconds: int = 3 * 3600,
) -> str:
    """A collectd-shaped RRD file fed every STEP seconds until ``end``: GAUGE sources
    hold ``values``, DERIVE ones grow by ``values`` per second."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    start = end - seconds
    rrdtool.create(
        path,
        "--step",
        str(STEP),
        "--start",
        str(start - STEP),
        *(
            f"DS:{name}:{kind}:{2 * STEP}:0:{'U' if kind == 'DERIVE' else '281474976710656'}"
            for name, kind in sources
        ),
        *(f"RRA:{cf}:0.1:{per}:{rows}" for rows, per in RRAS for cf in ("AVERAGE", "MIN", "MAX")),
    )
    updates = []
    for t in range(start, end + 1, STEP):
        row = [
            str(int(v * (t - start)) if kind == "DERIVE" else v)
            for (_, kind), v in zip(sources, values, strict=True)
        ]
        updates.append(f"{t}:" + ":".join(row))
    for i in range(0, len(updates), 500):
        rrdtool.update(path, *updates[i : i + 500])
    return path


def write_host(
    rrd_dir: str, hostname: str, end: int, cpus: int = 2, interfaces: Sequence[str] = ("eth0",)
) -> None:
    """What a node's cpu, memory, load and interface plugins leave on the collectd server."""
    base = os.path.join(rrd_dir, hostname)
    for cpu in range(cpus):
        for state, rate in CPU_JIFFIES.items():
            write(f"{base}/cpu-{cpu}/cpu-{state}.rrd", [("value", "DERIVE")], [rate], end)
    for kind, size in MEMORY.items():
        write(f"{base}/memory/memory-{kind}.rrd", [("value", "GAUGE")], [size], end)
    write(
        f"{base}/load/load.rrd",
        [("shortterm", "GAUGE"), ("midterm", "GAUGE"), ("longterm", "GAUGE")],
        LOAD,
        end,
    )
    for name in interfaces:
        write(
            f"{base}/interface-{name}/if_octets.rrd",
            [("rx", "DERIVE"), ("tx", "DERIVE")],
            IF_OCTETS,
            end,
        )


def write_vm(
    rrd_dir: str,
    vm_uuid: str,
    end: int,
    disks: Sequence[str] = ("vda",),
    interfaces: Sequence[str] = ("vnet0",),
) -> None:
    """What a node's virt plugin (HostnameFormat uuid) leaves for one guest."""
    base = os.path.join(rrd_dir, vm_uuid, "virt")
    write(f"{base}/virt_cpu_total.rrd", [("value", "DERIVE")], [VM_CPU_NS], end)
    for disk in disks:
        write(
            f"{base}/disk_octets-{disk}.rrd",
            [("read", "DERIVE"), ("write", "DERIVE")],
            VM_DISK,
            end,
        )
    for name in interfaces:
        write(f"{base}/if_octets-{name}.rrd", [("rx", "DERIVE"), ("tx", "DERIVE")], VM_IF, end)
