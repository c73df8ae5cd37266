"""SQL statements per request, and how many of them rebuild the identity.

``python -m benchmarks.identity`` builds a scratch SQLite database (Alembic to head) with a
small pool tree, a host and a VM, a member with a grant on the VM's pool and an API token,
builds the real WSGI app and counts, with SQLAlchemy's ``before_cursor_execute`` event:

* ``GET /api/v1/vms/{id}`` with ``Authorization: Bearer <token>``;
* ``GET /vms`` with a cookie session (logged in through the form);

each the statements of the whole request and those issued while the security policy loads
the identity (who is asking and which grants reach them).  The first request of each kind
is not counted (it may refresh the cached memberships, which the TTL then keeps), nor are
the once-a-minute writes (a session's ``last_seen_at``, a token's ``last_used_at``), which
the second request no longer makes.  Benchmarks report; they do not assert.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import transaction
import webtest
from alembic.config import Config
from passlib.apache import HtpasswdFile
from pyramid.interfaces import ISecurityPolicy
from pyramid.request import RequestLocalCache
from sqlalchemy import event

from alembic import command
from fedoracloud import main as make_app
from fedoracloud.models import Host, PoolKind, RoleGrant, User, Vm, get_tm_session
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.tokens import TokenService

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER, PASSWORD = "member", "bench-member-password"


def build(directory: str) -> tuple[Any, int, str]:
    """The app on a fresh database; the VM's id and the member's API token."""
    htpasswd = os.path.join(directory, "htpasswd")
    ht = HtpasswdFile(htpasswd, new=True, default_scheme="apr_md5_crypt")
    ht.set_password(MEMBER, PASSWORD)
    ht.save()
    groups = os.path.join(directory, "groups")
    with open(groups, "w") as out:
        out.write(f"sysadmin-cloud: {MEMBER}\n")
    settings = {
        "sqlalchemy.url": f"sqlite:///{directory}/bench.sqlite",
        "fedoracloud.session_secret": "bench-" + "x" * 30,
        "fedoracloud.secure_cookies": "false",
        "fedoracloud.auth.backend": "htpasswd",
        "fedoracloud.htpasswd.file": htpasswd,
        "fedoracloud.htpasswd.groups_file": groups,
        "fedoracloud.instance_dir": directory,
    }
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(HERE), "alembic"))
    cfg.attributes["settings"] = settings
    command.upgrade(cfg, "head")
    app = make_app({}, **settings)
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        session = get_tm_session(app.registry["dbsession_factory"], tm)
        pools = PoolService(ServiceContext.for_session(session))
        builtin = pools.ensure_builtin()
        site = pools.create("site", PoolKind.HARDWARE, builtin["hardware"])
        vms = pools.create("site-vms", PoolKind.VM, site)
        host = Host(
            uuid="00000000-0000-0000-0000-000000000001",
            hostname="node1.example.org",
            pool=site,
            pool_kind=PoolKind.HARDWARE.value,
            state="available",
            arch="x86_64",
            memory_mib=16384,
            cpu_count=8,
            libvirt_uri="test:///default",
        )
        vm = Vm(
            uuid="00000000-0000-0000-0000-000000000002",
            name="vm1",
            pool=vms,
            pool_kind=PoolKind.VM.value,
            host=host,
            vcpus=2,
            memory_mib=2048,
            state="stopped",
        )
        member = User(username=MEMBER)
        session.add_all([host, vm, member])
        session.flush()
        session.add(RoleGrant(user_id=member.id, pool_id=site.id, role="user"))
        secret = TokenService(ServiceContext.for_session(session)).create(member, "bench").secret
        session.flush()
        vm_id = vm.id
    return app, vm_id, secret


@contextmanager
def counting(app: Any) -> Iterator[dict[str, int]]:
    """Count every statement, and those issued while the identity loads."""
    engine = app.registry["dbengine"]
    counts = {"request": 0, "identity": 0}
    inside = [False]

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("BEGIN"):
            return  # SQLite's transaction start, which SQLAlchemy issues as a statement
        counts["request"] += 1
        counts["identity"] += inside[0]

    policy = app.registry.getUtility(ISecurityPolicy)
    original = policy.identity_cache

    def load_identity(request: Any) -> Any:
        inside[0] = True
        try:
            return policy.load_identity(request)
        finally:
            inside[0] = False

    event.listen(engine, "before_cursor_execute", seen)
    policy.identity_cache = RequestLocalCache(load_identity)
    try:
        yield counts
    finally:
        policy.identity_cache = original
        event.remove(engine, "before_cursor_execute", seen)


def main() -> None:
    """Print the statements per request."""
    with tempfile.TemporaryDirectory() as directory:
        app, vm_id, secret = build(directory)
        client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "bench.example"})
        cases = {}
        bearer = {"Authorization": f"Bearer {secret}"}
        client.get(f"/api/v1/vms/{vm_id}", headers=bearer)
        with counting(app) as counts:
            client.get(f"/api/v1/vms/{vm_id}", headers=bearer)
        cases["GET /api/v1/vms/{id} (token)"] = dict(counts)
        form = client.get("/login").forms[0]
        form["username"], form["password"] = MEMBER, PASSWORD
        form.submit(status=303)
        client.get("/vms")
        with counting(app) as counts:
            client.get("/vms")
        cases["GET /vms (session)"] = dict(counts)
        print(f"{'request':34} {'statements':>10} {'identity':>9}")
        for name, figures in cases.items():
            print(f"{name:34} {figures['request']:>10} {figures['identity']:>9}")


if __name__ == "__main__":
    main()
