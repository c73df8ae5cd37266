"""The demo's VM request flow: no Cobbler runs there, yet its profiles are in the database,
the request form offers them, and an approved request is provisioned on a demo host (its
storage pool, the public network) with a note that no Cobbler system was made."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fedoracloud import cobbler
from fedoracloud.demo import DEMO_ALLOWED_PROFILES, DEMO_CONTRIBUTOR, ensure_demo_people, load_demo
from fedoracloud.models import IpAddress, User, Vm
from fedoracloud.services.cobbler import ProfileService
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.vm_requests import VmRequestInput, VmRequestService, run_provision
from fedoracloud.settings import Settings

pytestmark = pytest.mark.integration


class Who:
    def __init__(self, user):
        self.user = user


def test_a_request_in_the_demo_is_provisioned_without_cobbler(dbsession, tmp_path):
    settings = Settings.from_dict(
        {
            "sqlalchemy.url": "sqlite://",
            "fedoracloud.session_secret": "x" * 20,
            "fedoracloud.htpasswd.file": str(tmp_path / "ht"),
            "fedoracloud.htpasswd.groups_file": str(tmp_path / "groups"),
            "fedoracloud.instance_dir": str(tmp_path),
            "fedoracloud.admins": "admin",
        }
    )
    ensure_demo_people(settings.htpasswd_file, settings.htpasswd_groups_file, str(tmp_path))
    load_demo(dbsession, settings)
    previous = cobbler.configure(settings.cobbler)  # the demo's ini links no Cobbler
    try:
        pool = PoolService(ServiceContext.for_session(dbsession)).by_path_names(
            "root/hardware/fedora/fedora-builders"
        )
        offered = [
            p.name for p in ProfileService(ServiceContext.for_session(dbsession)).allowed(pool)
        ]
        assert sorted(offered) == sorted(DEMO_ALLOWED_PROFILES)
        jdoe = dbsession.scalars(select(User).where(User.username == DEMO_CONTRIBUTOR)).one()
        admin = dbsession.scalars(select(User).where(User.username == "admin")).one()
        service = VmRequestService(ServiceContext(dbsession, settings, Who(jdoe)))
        network = service.guest_networks(pool)[0]
        profile = ProfileService(ServiceContext.for_session(dbsession)).allowed(pool)[0]
        req = service.submit(
            jdoe,
            VmRequestInput.parse(
                {
                    "name": "docs01",
                    "pool": pool.id,
                    "profile": profile.id,
                    "vcpus": 1,
                    "memory_mib": 1024,
                    "storage_gib": 10,
                    "network": network.id,
                    "reason": "a docs builder",
                }
            ),
        )
        task = VmRequestService(ServiceContext(dbsession, settings, Who(admin))).approve(
            req, Who(admin)
        )
        task.args = {"libvirt": {"fedoracloud.libvirt.domain_type": "test"}}
        message = run_provision(task, dbsession)
        assert req.state == "provisioned", req.failure_reason
        assert "no Cobbler is linked" in message
        vm = dbsession.get(Vm, req.vm_id)
        assert vm.state == "running" and vm.host.hostname.startswith("node0")
        address = dbsession.scalar(
            select(IpAddress.address).where(IpAddress.vm_nic_id == vm.nics[0].id)
        )
        assert address is not None and address.startswith("209.132.181.")
        assert vm.disks[0].path and vm.disks[0].volume_id
    finally:
        cobbler.configure(previous)
