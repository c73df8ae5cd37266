"""``fedoracloud vm``: list VMs, show one, or print the domain XML the app would define."""

from __future__ import annotations

import argparse
import json

from .context import Context, add_action, add_command


def cmd_vm(ctx: Context, args: argparse.Namespace) -> None:
    """List VMs, show one, or print the domain XML the app would define for it."""
    from sqlalchemy import select

    from ..models import Vm
    from ..services.pools import PoolService
    from ..services.vm_tasks import domain_xml
    from ..services.vms import VmService, allowed_actions

    with ctx.session() as dbsession:
        if args.vm_command == "list":
            pools = PoolService(ctx.service_context(dbsession))
            for vm in dbsession.scalars(select(Vm).order_by(Vm.name, Vm.id)):
                host = vm.host.hostname if vm.host is not None else "-"
                print(
                    f"{vm.id:>5}  {vm.state:<13}  {vm.name:<32}  {host:<32}  "
                    f"{pools.name_path(vm.pool)}"
                )
            return
        vm = VmService(ctx.service_context(dbsession)).by_name(args.vm)
        if args.vm_command == "xml":
            print(domain_xml(dbsession, vm, ctx.settings), end="")
            return
        data = {
            "id": vm.id,
            "uuid": vm.uuid,
            "name": vm.name,
            "state": vm.state,
            "state_reason": vm.state_reason,
            "host": vm.host.hostname if vm.host is not None else None,
            "pool": PoolService(ctx.service_context(dbsession)).name_path(vm.pool),
            "vcpus": vm.vcpus,
            "memory_mib": vm.memory_mib,
            "managed": vm.managed,
            "allowed_actions": allowed_actions(vm),
            "disks": [{"target": d.target_dev, "path": d.path} for d in vm.disks],
            "nics": [{"mac": n.mac, "network": n.network_id} for n in vm.nics],
        }
        print(json.dumps(data, indent=2))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``vm list|show|xml``."""
    vm = add_command(
        sub, "vm", cmd_vm, "list VMs, show one, or print the domain XML the app would define"
    )
    actions = vm.add_subparsers(dest="vm_command", required=True, metavar="ACTION")
    add_action(actions, "list", "every VM")
    for name, what in (
        ("show", "one VM, as JSON"),
        ("xml", "the domain XML the app would define for a VM"),
    ):
        add_action(actions, name, what).add_argument("vm", help="VM name, UUID or id")
