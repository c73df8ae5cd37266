"""``fedoracloud host``: list hosts, show one, approve or reject an enrolled one."""

from __future__ import annotations

import argparse
import json

from .context import Context, add_action, add_command


def cmd_host(ctx: Context, args: argparse.Namespace) -> None:
    """List hosts or show one."""
    from sqlalchemy import true

    from ..services.hosts import HostQuery, HostService
    from ..services.pools import PoolService

    with ctx.session() as dbsession:
        hosts = HostService(ctx.service_context(dbsession))
        pools = PoolService(ctx.service_context(dbsession))
        if args.host_command == "list":
            page = 1
            while True:
                query = HostQuery(state=args.state or "", page=page, per_page=500)
                rows, total = hosts.search(query, true())
                for host in rows:
                    print(
                        f"{host.id:>5}  {host.state:<11}  {host.hostname:<40}  "
                        f"{pools.name_path(host.pool)}"
                    )
                if page * 500 >= total:
                    break
                page += 1
        elif args.host_command in ("approve", "reject"):
            from ..services.enrollment import EnrollmentService

            host = hosts.by_name_or_uuid(args.host)
            enrollment = EnrollmentService(ctx.service_context(dbsession))
            if args.host_command == "approve":
                target = pools.by_path_names(args.pool) if args.pool else None
                enrollment.approve(host, target, args.reason or "")
                print(f"approved {host.hostname} in {pools.name_path(host.pool)}")
            else:
                enrollment.reject(host, args.reason)
                print(f"rejected {host.hostname}; its certificates are revoked")
        else:
            host = hosts.by_name_or_uuid(args.host)
            data = {
                "id": host.id,
                "uuid": host.uuid,
                "hostname": host.hostname,
                "state": host.state,
                "pool": pools.name_path(host.pool),
                "libvirt_uri": host.libvirt_uri,
                "arch": host.arch,
                "hypervisor": f"{host.hypervisor} {host.hypervisor_version}",
                "libvirt_version": host.libvirt_version,
                "memory_mib": host.memory_mib,
                "cpus": host.cpu_count,
                "nics": [
                    {"name": n.name, "mac": n.mac, "ip_address": n.ip_address} for n in host.nics
                ],
            }
            print(json.dumps(data, indent=2))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``host list|show|approve|reject``."""
    host = add_command(sub, "host", cmd_host, "list hosts or show one")
    actions = host.add_subparsers(dest="host_command", required=True, metavar="ACTION")
    host_list = add_action(actions, "list", "every host")
    host_list.add_argument("--state", default="", help="only hosts in this state, e.g. pending")
    show = add_action(actions, "show", "one host, as JSON")
    show.add_argument("host", help="host name or UUID")
    approve = add_action(actions, "approve", "approve a pending host; the CA signs its certificate")
    approve.add_argument("host", help="host name or UUID")
    approve.add_argument("--pool", help="the hardware pool to put it in (default: where it is)")
    approve.add_argument("--reason", default="", help="a note for the audit log")
    reject = add_action(actions, "reject", "reject a host and revoke its certificates")
    reject.add_argument("host", help="host name or UUID")
    reject.add_argument("--reason", required=True, help="why (the audit log keeps it)")
