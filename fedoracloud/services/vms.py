"""VMs: what the foundation needs of them (recording the domains a host reports)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Host, Pool, PoolKind, Vm
from ..virt.facts import DomainFact
from . import InvalidInput


class VmService:
    """Reading and recording VMs."""

    def __init__(self, dbsession: Session, actor: Any = None, remote_addr: str = "") -> None:
        self.dbsession = dbsession
        self.actor = actor
        self.remote_addr = remote_addr

    def import_domains(self, host: Host, domains: list[DomainFact], pool: Pool) -> list[Vm]:
        """Record each domain as a VM of a VM pool placed on the host (matched by UUID)."""
        if pool.kind != PoolKind.VM:
            raise InvalidInput(f"VMs live in VM pools; {pool.name!r} is a {pool.kind} pool")
        vms = []
        for domain in domains:
            vm = self.dbsession.scalars(select(Vm).where(Vm.uuid == domain.uuid)).first()
            if vm is None:
                vm = Vm(uuid=domain.uuid, name=domain.name, pool_id=pool.id, pool_kind=pool.kind)
                self.dbsession.add(vm)
            vm.host_id = host.id
            vm.state = domain.state
            vm.vcpus = domain.vcpus
            vm.memory_mib = domain.memory_mib
            vms.append(vm)
        self.dbsession.flush()
        return vms
