"""The split deployment rehearsed on one machine (``make rehearsal`` runs the same thing):
two app instances from ``deploy/production.ini`` behind Debian's Apache with
``mod_proxy_balancer``, two workers on the running RabbitMQ, two event listeners, a private
libvirtd with the tiny TCG guest, a scratch database on the running PostgreSQL.  Through
the front: log in, create and start a VM and watch it run; kill an app instance mid-traffic
(the session goes on, retried creates make each VM once); kill the event listener holding
the host's lock (the other takes over; a change made meanwhile is reconciled).

And ``deploy/`` itself: the systemd units pass ``systemd-analyze verify``; the balancer conf
shipped there is what ``fedoracloud web-config --balancer`` renders from
``deploy/production.ini``.  The deployment runs in the ``--db=postgresql`` pass only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from ..faults.rehearsal import rehearse

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
BIN = os.path.dirname(sys.executable)
#: dummy values for the example's env:NAME settings (nothing connects to them)
EXAMPLE_ENV = {
    "FEDORACLOUD_DATABASE_URL": "postgresql+psycopg://fedoracloud@db01.example.invalid/fc",
    "FEDORACLOUD_BROKER_URL": "amqp://fedoracloud:x@mq01.example.invalid:5672/fedoracloud",
    "FEDORACLOUD_SESSION_SECRET": "x" * 32,
    "FEDORACLOUD_OIDC_CLIENT_ID": "fedoracloud",
    "FEDORACLOUD_OIDC_CLIENT_SECRET": "secret",
    "FEDORACLOUD_COLLECTD_PASSWORD": "collectd-secret",
    "FEDORACLOUD_ENC_TOKEN": "enc-token-" + "x" * 16,
    "FEDORACLOUD_COBBLER_PASSWORD": "cobbler-secret",
}


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Any) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = []
    for name in sorted(os.listdir(os.path.join(DEPLOY, "systemd"))):
        with open(os.path.join(DEPLOY, "systemd", name), encoding="utf-8") as unit:
            text = unit.read()
        # the installed commands are where this checkout's virtualenv has them
        text = text.replace("/usr/bin/pserve", f"{BIN}/pserve")
        text = text.replace("/usr/bin/fedoracloud", f"{BIN}/fedoracloud")
        instance = name.replace("@.service", "@6543.service")
        (tmp_path / instance).write_text(text)
        units.append(str(tmp_path / instance))
    assert len(units) == 4
    check = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [
        line for line in check.stderr.splitlines() if str(tmp_path) in line or "fedoracloud" in line
    ]
    assert check.returncode == 0 and not problems, check.stderr


def test_the_shipped_balancer_conf_is_what_the_renderer_makes(tmp_path: Any) -> None:
    ini = os.path.join(DEPLOY, "production.ini")
    render = subprocess.run(
        [f"{BIN}/fedoracloud", "-c", ini, "web-config", "--balancer", "--out", str(tmp_path)],
        env=dict(os.environ, **EXAMPLE_ENV),
        capture_output=True,
        text=True,
        check=False,
    )
    assert render.returncode == 0, render.stderr
    made = tmp_path / "etc" / "httpd" / "conf.d" / "fedoracloud-balancer.conf"
    with open(os.path.join(DEPLOY, "httpd", "fedoracloud-balancer.conf"), encoding="utf-8") as f:
        assert made.read_text() == f.read()
    assert 'BalancerMember "http://10.5.0.11:6543"' in made.read_text()


def test_the_split_deployment_rehearsed_on_one_machine(db_kind: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("the rehearsal needs root (a private libvirtd, apache2 as www-data)")
    if db_kind != "postgresql":
        pytest.skip("the split deployment runs on PostgreSQL: run with --db=postgresql")
    figures = rehearse(short=True)
    assert figures["start_to_running_s"] < 60
    killed = figures["app_instance_killed"]
    assert killed["vms_created"] == 16  # each exactly once (checked in the rehearsal)
    assert not [s for s in killed["statuses"] if s not in (200, 201, 502, 503)], killed
    listener = figures["event_listener_killed"]
    assert listener["takeover_s"] < 10, listener
    assert listener["state_corrected_s"] < 15, listener
    print(f"\nrehearsal figures: {figures}")
