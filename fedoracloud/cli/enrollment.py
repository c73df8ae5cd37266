"""``fedoracloud add-host``: a one-time token for a node to enroll with."""

from __future__ import annotations

import argparse
import json
import sys

from .context import Context, add_command


def cmd_add_host(ctx: Context, args: argparse.Namespace) -> None:
    """Issue a one-time enrollment token and print the command to run on the node."""
    from ..pki import CaSettings, CertificateAuthority
    from ..services.enrollment import EnrollmentService
    from ..services.pools import PoolService

    ca = CertificateAuthority(CaSettings.from_settings(ctx.settings))
    if not ca.exists():  # the first add-host on a new site makes the CA
        ca.init()
        print(f"made the CA in {ca.settings.ca_dir} ('fedoracloud ca show')", file=sys.stderr)
    with ctx.session() as dbsession:
        pool = (
            PoolService(ctx.service_context(dbsession)).by_path_names(args.pool)
            if args.pool
            else None
        )
        issued = EnrollmentService(ctx.service_context(dbsession)).issue_token(
            pool, args.hostname, args.expires, args.server or ""
        )
    if args.json:
        print(
            json.dumps(
                {
                    "token": issued.token,
                    "expires": issued.row.expires_at.isoformat(),
                    "ca_fingerprint": issued.ca_fingerprint,
                    "command": issued.command,
                    "pool": issued.pool_path,
                    "hostname": issued.row.hostname,
                }
            )
        )
        return
    print(f"Enrollment token for {issued.row.hostname or 'any host name'} into {issued.pool_path},")
    print(f"valid once, until {issued.row.expires_at:%Y-%m-%d %H:%M} UTC. Run this on the node:")
    print()
    print(f"  {issued.command}")
    print()
    print(f"CA fingerprint (SHA-256): {issued.ca_fingerprint}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``add-host [--pool] [--hostname] [--expires] [--server] [--json]``."""
    add_host = add_command(
        sub, "add-host", cmd_add_host, "issue a one-time token for a node to enroll with"
    )
    add_host.add_argument("--pool", help="hardware pool the host lands in (default: default)")
    add_host.add_argument("--hostname", help="only a node with this host name may use it")
    add_host.add_argument("--expires", default="1h", help="lifetime: 30m, 1h, 2d (default 1h)")
    add_host.add_argument("--server", help="the URL nodes reach the app at, for the command")
    add_host.add_argument("--json", action="store_true", help="print one JSON object")
