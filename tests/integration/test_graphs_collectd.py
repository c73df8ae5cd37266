"""Graphs from the real collectd: the app's rendered node config (cpu, memory, load,
interface and virt on the machine's real libvirtd with a running TCG guest, sending signed
to 127.0.0.1) and its collectd server config (receiving, writing RRD files into the app's
``fedoracloud.stats.rrd_dir``) run as two collectd processes; the app's graph endpoints
then answer real data points for that host and for its VM."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedoracloud.puppet import ConfigRenderer
from fedoracloud.services.graphs import GraphsSettings
from fedoracloud.settings import PuppetSettings
from fedoracloud.virt.domain import DiskSpec
from fedoracloud.virt.hypervisor import Hypervisor

from ..collectd import collectd_pair, wait_until
from ..factories import HostFactory, VmFactory

pytestmark = pytest.mark.integration


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def rrd_dir(app: Any) -> Iterator[Path]:
    directory = Path(GraphsSettings.from_settings(app.registry["fc_settings"]).rrd_dir)
    directory.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(directory))
    yield directory
    for name in set(os.listdir(directory)) - before:
        shutil.rmtree(directory / name)


@pytest.fixture
def guest(
    real_libvirt: str, tcg_guest: Any, libvirt_domains: Any, tmp_path: Path
) -> Iterator[tuple[Hypervisor, Any]]:
    """The tiny TCG guest running on the real libvirtd, with a raw disk for the virt
    plugin's disk statistics."""
    disk = tmp_path / "vda.img"
    with disk.open("wb") as out:
        out.truncate(8 << 20)
    spec = tcg_guest.spec(
        libvirt_domains.new(), str(tmp_path / "serial.log"), disks=(DiskSpec("vda", str(disk)),)
    )
    hypervisor = Hypervisor(real_libvirt)
    hypervisor.define(spec)
    hypervisor.start(spec.uuid)
    yield hypervisor, spec
    hypervisor.destroy(spec.uuid)


def test_real_collectd_data_reaches_the_host_and_vm_graphs(
    admin_app: Any,
    tree: dict[str, Any],
    real_libvirt: str,
    guest: tuple[Hypervisor, Any],
    rrd_dir: Path,
    tmp_path: Path,
) -> None:
    _, spec = guest
    host = HostFactory(pool=tree["fedora"], state="available")
    vm = VmFactory(
        pool=tree["fedora-vms"], host=host, name=spec.name, uuid=spec.uuid, state="running"
    )
    renderer = ConfigRenderer(
        PuppetSettings.from_dict(
            {
                "fedoracloud.management_network": "10.5.0.0/16",
                "fedoracloud.collectd.server": "127.0.0.1",
                "fedoracloud.collectd.listen": "127.0.0.1",
                "fedoracloud.collectd.port": str(free_udp_port()),
                "fedoracloud.collectd.password": "graphs-signing-secret",
                "fedoracloud.collectd.certname": "stats.cloud.example.org",
                "fedoracloud.collectd.data_dir": str(rrd_dir),
                "fedoracloud.collectd.libvirt_uri": real_libvirt,
            }
        )
    )
    server = {f.path: f.content for f in renderer.collectd_server_files()}
    node = {f.path: f.content for f in renderer.node_files(host.hostname)}["/etc/collectd.conf"]
    auth_file = tmp_path / "collectd.passwd"
    auth_file.write_text(server["/etc/collectd.passwd"])

    def graph(url: str) -> dict[str, Any]:
        return admin_app.get(url).json

    host_url = f"/api/v1/hosts/{host.id}/graphs"
    vm_url = f"/api/v1/vms/{vm.id}/graphs"
    assert graph(f"{host_url}/cpu")["no_data"] is True  # before collectd runs
    with collectd_pair(tmp_path, server["/etc/collectd.conf"], node, auth_file, 2) as processes:
        wait_until(
            lambda: all(
                not graph(url)["no_data"]
                for url in (
                    f"{host_url}/cpu",
                    f"{host_url}/load",
                    f"{host_url}/memory",
                    f"{vm_url}/cpu",
                    f"{vm_url}/disk",
                )
            ),
            processes,
            40,
            "no real points for the host and the VM",
        )
    # where collectd wrote: the host under its name, the guest under its UUID
    assert (rrd_dir / host.hostname / "load" / "load.rrd").exists()
    assert (rrd_dir / spec.uuid / "virt" / "virt_cpu_total.rrd").exists()

    def points(answer: dict[str, Any]) -> dict[str, list[float]]:
        return {s["name"]: [v for _, v in s["points"] if v is not None] for s in answer["series"]}

    cpu = points(graph(f"{host_url}/cpu?range=1h"))
    assert {"user", "system"} <= set(cpu)
    assert all(0 <= v <= 100 for values in cpu.values() for v in values)
    load = points(graph(f"{host_url}/load"))
    assert list(load) == ["1 min", "5 min", "15 min"] and all(load.values())
    memory = points(graph(f"{host_url}/memory"))
    assert memory["used"] and all(v > 0 for v in memory["used"])
    vm_cpu = points(graph(f"{vm_url}/cpu"))["CPU"]
    assert vm_cpu and all(v >= 0 for v in vm_cpu) and max(vm_cpu) > 0  # the guest ticks
    disk = points(graph(f"{vm_url}/disk"))
    assert set(disk) == {"vda read", "vda written"} and all(disk.values())
    day = graph(f"{vm_url}/cpu?range=1d")
    assert day["step"] == 300 and day["series"][0]["points"]
