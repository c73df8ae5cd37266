"""The demo's sample statistics: collectd-shaped RRD files the graphs read, only inside the
instance directory, written afresh on each run."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from sqlalchemy import select

from fedoracloud.demo import ensure_demo_people, load_demo
from fedoracloud.demo_graphs import write_demo_graphs
from fedoracloud.models import Host, HostState, Vm, VmState
from fedoracloud.services.graphs import RANGES, GraphsService, GraphsSettings
from fedoracloud.settings import Settings


def demo_settings(tmp_path: Any, rrd_dir: str) -> Settings:
    settings = Settings.from_dict(
        {
            "sqlalchemy.url": "sqlite://",
            "fedoracloud.session_secret": "x" * 20,
            "fedoracloud.htpasswd.file": str(tmp_path / "ht"),
            "fedoracloud.htpasswd.groups_file": str(tmp_path / "groups"),
            "fedoracloud.instance_dir": str(tmp_path),
            "fedoracloud.stats.rrd_dir": rrd_dir,
        }
    )
    ensure_demo_people(settings.htpasswd_file, settings.htpasswd_groups_file, str(tmp_path))
    return settings


def test_the_demo_s_hosts_and_running_vms_get_graphs(dbsession: Any, tmp_path: Any) -> None:
    settings = demo_settings(tmp_path, str(tmp_path / "demo-rrd"))
    load_demo(dbsession, settings)
    now = time.time()
    written = write_demo_graphs(dbsession, settings, now, seconds=7200)  # the demo writes a day
    assert written is not None
    hosts = dbsession.scalars(select(Host).where(Host.state == HostState.AVAILABLE)).all()
    running = dbsession.scalars(
        select(Vm).where(Vm.state == VmState.RUNNING, Vm.host_id.in_([h.id for h in hosts]))
    ).all()
    assert written.hosts == len(hosts) > 0 and written.vms == len(running) > 0
    assert "made up, not measured" in (tmp_path / "demo-rrd" / "README").read_text()
    reader = GraphsService(GraphsSettings.from_settings(settings), clock=lambda: now)
    for host in hosts:
        for graph in ("cpu", "memory", "load", "interfaces"):
            answer = reader.host_graph(host.hostname, graph, RANGES["1d"]).as_json()
            assert answer["no_data"] is False, (host.hostname, graph)
        cpu = reader.host_graph(host.hostname, "cpu", RANGES["1h"]).as_json()
        assert all(0 <= v <= 100 for s in cpu["series"] for _, v in s["points"] if v is not None)
    for vm in running:
        assert reader.vm_graph(vm.uuid, "cpu", RANGES["1h"], vm.vcpus).as_json()["no_data"] is False
    pending = dbsession.scalars(select(Host).where(Host.state == HostState.PENDING)).first()
    assert pending is not None  # node01 waits for approval: its page says "No data yet"
    assert reader.host_graph(pending.hostname, "cpu", RANGES["1h"]).as_json()["no_data"] is True
    # again: the same files, afresh
    before = sorted(os.listdir(tmp_path / "demo-rrd"))
    again = write_demo_graphs(dbsession, settings, now + 60, seconds=7200)
    assert again is not None and again.files == written.files
    assert sorted(os.listdir(tmp_path / "demo-rrd")) == before


@pytest.mark.parametrize("where", ["/var/lib/collectd/rrd", "{instance}"])
def test_no_sample_data_outside_the_instance_directory(
    dbsession: Any, tmp_path: Any, where: str
) -> None:
    settings = demo_settings(tmp_path, where.format(instance=tmp_path))
    assert write_demo_graphs(dbsession, settings) is None
