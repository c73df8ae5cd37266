"""The ``fedoracloud`` command: set up the database, load the demo, serve, manage pools,
hosts and users.  ``-c INI`` picks the configuration (default ``development.ini``)."""

from __future__ import annotations

import argparse
import configparser
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import transaction
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .services import ServiceError
from .virt.connection import VirtError

EXIT_CONFIG = 2
EXIT_FAILED = 1


class CliError(Exception):
    """Stop the command with this one-line message."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# -- configuration and database ------------------------------------------------------------


def load_settings(ini: str) -> tuple[dict[str, Any], Any]:
    """The ini's [app:main] settings, raw and validated; CliError naming what is wrong."""
    from pyramid.paster import get_appsettings

    from .settings import ConfigError, Settings

    if not os.path.exists(ini):
        raise CliError(f"configuration file {ini} does not exist (give one with -c)", EXIT_CONFIG)
    try:
        raw = dict(get_appsettings(ini))
    except (configparser.Error, LookupError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"cannot read {ini}: {first}", EXIT_CONFIG) from exc
    try:
        return raw, Settings.from_dict(raw)
    except ConfigError as exc:
        raise CliError(f"{ini}: {exc}", EXIT_CONFIG) from exc


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


class Context:
    """What a subcommand needs: settings, the engine, and a transaction-scoped session."""

    def __init__(self, ini: str) -> None:
        from .models import get_engine, get_session_factory
        from .settings import resolve_env

        self.ini = os.path.abspath(ini)
        raw, self.settings = load_settings(ini)
        self.raw_settings = resolve_env(raw)
        if self.settings.database_url.startswith("sqlite:///"):
            db_dir = os.path.dirname(make_url(self.settings.database_url).database or "")
            if db_dir:
                os.makedirs(db_dir, exist_ok=True)
        try:
            self.engine = get_engine(self.raw_settings)
        except Exception as exc:
            raise CliError(f"setting sqlalchemy.url: {exc}", EXIT_CONFIG) from exc
        self.session_factory = get_session_factory(self.engine)

    def check_database(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise CliError(
                f"cannot reach the database of setting sqlalchemy.url "
                f"({_redacted(self.settings.database_url)}): {reason}"
            ) from exc

    def task_settings(self) -> Any:
        """The task queue's settings (``fedoracloud.broker_url``, ``fedoracloud.tasks.*``)."""
        from .services.tasks import TaskSettings
        from .settings import ConfigError

        try:
            return TaskSettings.from_settings(self.raw_settings)
        except ConfigError as exc:
            raise CliError(f"{self.ini}: {exc}", EXIT_CONFIG) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end, aborted on error."""
        from .models import get_tm_session

        self.check_database()
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            yield get_tm_session(self.session_factory, manager)


def alembic_config(ctx: Context) -> Any:
    """Alembic's config for this ini, with the app's settings passed to env.py."""
    from alembic.config import Config

    here = os.path.dirname(os.path.abspath(__file__))
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(here), "alembic"))
    cfg.attributes["settings"] = ctx.raw_settings
    return cfg


def upgrade_database(ctx: Context) -> None:
    """Bring the schema to the newest migration."""
    from alembic import command

    ctx.check_database()
    command.upgrade(alembic_config(ctx), "head")


# -- subcommands ---------------------------------------------------------------------------


def cmd_initdb(ctx: Context, args: argparse.Namespace) -> None:
    """Upgrade the schema and create the built-in pools (safe to run again)."""
    from .services.pools import PoolService

    upgrade_database(ctx)
    with ctx.session() as dbsession:
        made = PoolService(dbsession).ensure_builtin()
    print("database ready: " + ", ".join(sorted(made)) + " pools exist")


def cmd_demo(ctx: Context, args: argparse.Namespace) -> None:
    """Load the demo: the seed's pools, eight fake hosts read through libvirt, three people."""
    from .demo import DEMO_PEOPLE, ensure_demo_people, load_demo
    from .demo_stats import write_demo_stats

    upgrade_database(ctx)
    os.makedirs(ctx.settings.instance_dir, exist_ok=True)
    made: dict[str, str] = {}
    if ctx.settings.auth_backend == "htpasswd":
        made = ensure_demo_people(
            ctx.settings.htpasswd_file,
            ctx.settings.htpasswd_groups_file,
            ctx.settings.instance_dir,
        )
    with ctx.session() as dbsession:
        result = load_demo(dbsession, ctx.settings, progress=print)
        graphs = write_demo_stats(dbsession, ctx.settings)
    print(f"demo ready: {len(result['hosts'])} hosts, {len(result['vm_pools'])} VM pools")
    if graphs is not None:
        print(
            f"demo graphs: a day of made-up statistics for {graphs.hosts} hosts and"
            f" {graphs.vms} VMs in {graphs.directory}"
        )
    for username, what in DEMO_PEOPLE:
        if username in made:
            print(f"demo login: '{username}' with password '{made[username]}' ({what})")
    if made:
        print(f"(passwords shown once; also in {ctx.settings.instance_dir}/demo-*-password)")


def cmd_serve(ctx: Context, args: argparse.Namespace) -> None:
    """Serve the web UI and API."""
    import waitress
    from pyramid.paster import get_app, setup_logging

    ctx.check_database()
    task_settings = ctx.task_settings()
    setup_logging(ctx.ini)
    app = get_app(ctx.ini, "main")
    if task_settings.embedded:  # no broker: this process runs the tasks (the demo)
        from .tasks import start_embedded_worker

        start_embedded_worker(
            app.registry["dbsession_factory"], task_settings, app.registry["task_dispatcher"]
        )
        from .services.vm_events import EventService

        EventService(app.registry["dbengine"]).start()  # VM state from libvirt's events
    if ctx.settings.console.embedded_proxy:  # all-in-one: the console proxy runs here too
        from .console_proxy import make_server, start

        console = ctx.settings.console
        try:
            engine = app.registry["dbengine"]
            start(make_server(engine, console.listen_host, console.listen_port, console.heartbeat))
            print(f"console proxy on {console.listen_host}:{console.listen_port}", flush=True)
        except OSError as exc:
            print(f"console proxy not started ({console.listen_port}: {exc.strerror})", flush=True)
    print(
        f"FedoraCloud is serving on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True
    )
    waitress.serve(app, host=args.host, port=args.port, threads=8, ident="FedoraCloud")


def _pool_line(pools: Any, pool: Any) -> str:
    return f"{pool.id:>5}  {pool.kind:<9}  {pools.name_path(pool)}"


def cmd_pool(ctx: Context, args: argparse.Namespace) -> None:
    """List, create, move or delete pools."""
    from .services.pools import PoolService

    with ctx.session() as dbsession:
        pools = PoolService(dbsession)
        if args.pool_command == "list":
            for pool in pools.subtree(pools.root()):
                print(_pool_line(pools, pool))
        elif args.pool_command == "create":
            parent = pools.by_path_names(args.parent)
            pool = pools.create(args.name, args.kind, parent, args.description)
            print("created " + _pool_line(pools, pool))
        elif args.pool_command == "move":
            pool = pools.move(pools.by_path_names(args.pool), pools.by_path_names(args.parent))
            print("moved  " + _pool_line(pools, pool))
        elif args.pool_command == "delete":
            pool = pools.by_path_names(args.pool)
            name = pools.name_path(pool)
            pools.delete(pool)
            print(f"deleted {name}")


def cmd_host(ctx: Context, args: argparse.Namespace) -> None:
    """List hosts or show one."""
    from sqlalchemy import true

    from .services.hosts import HostQuery, HostService
    from .services.pools import PoolService

    with ctx.session() as dbsession:
        hosts = HostService(dbsession)
        pools = PoolService(dbsession)
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
            from .services.enrollment import EnrollmentService

            host = hosts.by_name_or_uuid(args.host)
            enrollment = EnrollmentService(dbsession, ctx.settings)
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


def cmd_ca(ctx: Context, args: argparse.Namespace) -> None:
    """Create the app's CA (once) or describe it."""
    from .pki import CaError, CaSettings, CertificateAuthority

    ca = CertificateAuthority(CaSettings.from_settings(ctx.settings))
    try:
        if args.ca_command == "init":
            ca.init()
            print(f"CA created in {ca.settings.ca_dir} (key {ca.settings.key_path}, mode 0600)")
        info = ca.describe()
    except CaError as exc:
        raise CliError(str(exc)) from exc
    for key, value in info.items():
        print(f"{key + ':':<20} {value}")


def cmd_add_host(ctx: Context, args: argparse.Namespace) -> None:
    """Issue a one-time enrollment token and print the command to run on the node."""
    from .pki import CaSettings, CertificateAuthority
    from .services.enrollment import EnrollmentService
    from .services.pools import PoolService

    ca = CertificateAuthority(CaSettings.from_settings(ctx.settings))
    if not ca.exists():  # the first add-host on a new site makes the CA
        ca.init()
        print(f"made the CA in {ca.settings.ca_dir} ('fedoracloud ca show')", file=sys.stderr)
    with ctx.session() as dbsession:
        pool = PoolService(dbsession).by_path_names(args.pool) if args.pool else None
        issued = EnrollmentService(dbsession, ctx.settings).issue_token(
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


def cmd_user(ctx: Context, args: argparse.Namespace) -> None:
    """Add a user to the local password file."""
    from .auth.htpasswd import HtpasswdBackend, InvalidUsername, check_username
    from .models import RoleGrant
    from .permissions import Role
    from .services.pools import PoolService
    from .services.users import UserService

    if ctx.settings.auth_backend != "htpasswd":
        raise CliError(
            "user add manages the local password file; this ini uses the "
            f"{ctx.settings.auth_backend} login backend"
        )
    try:
        username = check_username(args.username)
    except InvalidUsername as exc:
        raise CliError(str(exc)) from exc
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {username}: ")
        if password != getpass.getpass("Again: "):
            raise CliError("the two passwords differ")
    if not password:
        raise CliError("an empty password is not allowed")
    with ctx.session() as dbsession:
        user = UserService(dbsession).get_or_create(username)
        if args.admin:
            root = PoolService(dbsession).root()
            grant = dbsession.query(RoleGrant).filter_by(pool_id=root.id, user_id=user.id).first()
            if grant is None:
                dbsession.add(
                    RoleGrant(pool_id=root.id, user_id=user.id, role=Role.SUPER_ADMIN.value)
                )
            else:
                grant.role = Role.SUPER_ADMIN.value
    HtpasswdBackend(ctx.settings.htpasswd_file).set_password(username, password)
    print(f"user {username} {'(super admin) ' if args.admin else ''}can log in")


# -- tasks the task queue -----------------------------------------------------------------------


def cmd_worker(ctx: Context, args: argparse.Namespace) -> None:
    """Run a Celery worker for the ini's broker, with heartbeats and the sweep."""
    from .tasks import run_worker

    settings = ctx.task_settings()
    if not 1 <= args.concurrency <= 64:
        raise CliError(f"--concurrency must be between 1 and 64, got {args.concurrency}")
    if settings.embedded:
        raise CliError(
            "setting fedoracloud.broker_url is empty: 'fedoracloud serve' runs the tasks"
            " itself (embedded); set amqp://... to run separate workers"
        )
    ctx.check_database()
    from .cobbler import configure as configure_cobbler

    configure_cobbler(ctx.settings.cobbler)  # the provisioning tasks talk to Cobbler
    run_worker(
        ctx.session_factory,
        settings,
        concurrency=args.concurrency,
        sweep=not args.no_sweep,
        loglevel=args.loglevel,
    )


def _task_line(task: Any) -> str:
    who = task.user.username if task.user is not None else "system"
    when = task.created_at.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{task.id:>7}  {task.state:<9}  {task.progress:>3}%  {task.kind:<16}  "
        f"{task.target_type} {task.target_id:<6}  {who:<12}  {when}  {task.message[:60]}"
    )


def cmd_task(ctx: Context, args: argparse.Namespace) -> None:
    """List tasks, show one, or cancel one."""
    from sqlalchemy import true

    from .services.tasks import TaskQuery, TaskService

    with ctx.session() as dbsession:
        tasks = TaskService(dbsession, settings=ctx.task_settings())
        if args.task_command == "list":
            query = TaskQuery(state=args.state or "", kind=args.kind or "", per_page=args.limit)
            rows, total = tasks.search(query, true())
            for task in rows:
                print(_task_line(task))
            if total > len(rows):
                print(f"({len(rows)} of {total} shown; --limit shows more)")
            return
        task = tasks.get(args.task)
        if args.task_command == "cancel":
            tasks.cancel(task)
            print(_task_line(task))
            return
        data = {
            "id": task.id,
            "kind": task.kind,
            "target": {"type": task.target_type, "id": task.target_id},
            "target_name": tasks.target_name(task),
            "state": task.state,
            "progress": task.progress,
            "message": task.message,
            "user": task.user.username if task.user is not None else None,
            "attempts": task.attempts,
            "max_attempts": task.max_attempts,
            "worker": task.worker or None,
            "cancel_requested": task.cancel_requested,
            "args": task.args,
        }
        for key in (
            "created_at",
            "started_at",
            "heartbeat_at",
            "deadline_at",
            "next_attempt_at",
            "finished_at",
        ):
            value = getattr(task, key)
            data[key] = value.isoformat() if value is not None else None
        print(json.dumps(data, indent=2))


def _puppet_config_error(exc: Exception) -> CliError:
    return CliError(str(exc), EXIT_CONFIG)


def cmd_enc(ctx: Context, args: argparse.Namespace) -> None:
    """Print Puppet's node document for a certname as YAML (exit 1 for an unknown one)."""
    from .puppet.enc import EncService
    from .settings import ConfigError

    try:
        with ctx.session() as dbsession:
            document = EncService(dbsession, ctx.settings.puppet).classify(args.certname).to_yaml()
    except ConfigError as exc:
        raise _puppet_config_error(exc) from exc
    sys.stdout.write(document)


def cmd_node_config(ctx: Context, args: argparse.Namespace) -> None:
    """Write an approved node's config files under DIR at their real paths."""
    from .puppet import check_certname, write_files
    from .puppet.enc import APPROVED_STATES, EncService
    from .settings import ConfigError

    try:
        with ctx.session() as dbsession:
            enc = EncService(dbsession, ctx.settings.puppet)
            name = check_certname(args.certname)
            host = enc.host_for(name)
            if host is None:
                raise CliError(f"no host is named {name}")
            if host.state not in APPROVED_STATES:
                raise CliError(f"host {name} is {host.state}: it gets configs once approved")
            files = enc.node_files(host)
    except ConfigError as exc:
        raise _puppet_config_error(exc) from exc
    for path in write_files(files, args.out):
        print(path)


def cmd_web_config(ctx: Context, args: argparse.Namespace) -> None:
    """Write the UI boxes' httpd conf.d file under DIR at its real path."""
    from .puppet import ConfigRenderer, write_files
    from .settings import ConfigError

    try:
        renderer = ConfigRenderer(ctx.settings.puppet)
        files = renderer.balancer_files() if args.balancer else renderer.web_files()
    except ConfigError as exc:
        raise _puppet_config_error(exc) from exc
    for path in write_files(files, args.out):
        print(path)


# -- VMs the VM lifecycle ----------------------------------------------------------------------


def cmd_vm(ctx: Context, args: argparse.Namespace) -> None:
    """List VMs, show one, or print the domain XML the app would define for it."""
    from sqlalchemy import select

    from .models import Vm
    from .services.pools import PoolService
    from .services.vm_tasks import domain_xml
    from .services.vms import VmService, allowed_actions

    with ctx.session() as dbsession:
        if args.vm_command == "list":
            pools = PoolService(dbsession)
            for vm in dbsession.scalars(select(Vm).order_by(Vm.name, Vm.id)):
                host = vm.host.hostname if vm.host is not None else "-"
                print(
                    f"{vm.id:>5}  {vm.state:<13}  {vm.name:<32}  {host:<32}  "
                    f"{pools.name_path(vm.pool)}"
                )
            return
        vm = VmService(dbsession).by_name(args.vm)
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
            "pool": PoolService(dbsession).name_path(vm.pool),
            "vcpus": vm.vcpus,
            "memory_mib": vm.memory_mib,
            "managed": vm.managed,
            "allowed_actions": allowed_actions(vm),
            "disks": [{"target": d.target_dev, "path": d.path} for d in vm.disks],
            "nics": [{"mac": n.mac, "network": n.network_id} for n in vm.nics],
        }
        print(json.dumps(data, indent=2))


def cmd_events(ctx: Context, args: argparse.Namespace) -> None:
    """Keep VM state current from libvirt's lifecycle events of every approved host (one
    listener per host in the cluster: PostgreSQL advisory locks), reconciling periodically."""
    import logging
    import signal
    import threading

    from .services.vm_events import EventService

    ctx.check_database()
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(message)s")
    service = EventService(
        ctx.engine, reconcile_every=args.reconcile_every, rescan_every=args.rescan_every
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    print("listening to libvirt events (Ctrl-C stops)", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


def cmd_console_proxy(ctx: Context, args: argparse.Namespace) -> None:
    """Run the console proxy: websockify with FedoraCloud's one-time token plugin, between
    the browsers' noVNC and the VMs' VNC displays (httpd proxies /console/ to it)."""
    import logging
    import signal

    from .console_proxy import make_server, parse_listen

    console = ctx.settings.console
    try:
        host, port = (
            parse_listen(args.listen) if args.listen else (console.listen_host, console.listen_port)
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from exc
    ctx.check_database()
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = make_server(ctx.engine, host, port, console.heartbeat)
    except OSError as exc:
        raise CliError(f"console proxy: cannot listen on {host}:{port}: {exc.strerror}") from exc

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt  # serve_forever() returns through the finally below

    signal.signal(signal.SIGTERM, stop)
    print(f"console proxy listening on {host}:{server.port} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- argument parsing ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(prog="fedoracloud", description=__doc__)
    parser.add_argument(
        "-c",
        "--config",
        default="development.ini",
        metavar="INI",
        help="the configuration file (default: development.ini)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[Context, argparse.Namespace], None], help_text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("initdb", cmd_initdb, "create or upgrade the database and the built-in pools")
    add("demo", cmd_demo, "load the demo: the seed's pools and eight fake libvirt hosts")
    serve = add("serve", cmd_serve, "serve the web UI and the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=6543, help="port to listen on")

    pool = add("pool", cmd_pool, "list, create, move or delete pools")
    pool_sub = pool.add_subparsers(dest="pool_command", required=True, metavar="ACTION")
    pool_sub.add_parser("list", help="the pool tree", description="the pool tree")
    create = pool_sub.add_parser("create", help="make a pool", description="make a pool")
    create.add_argument("name")
    create.add_argument("--kind", required=True, choices=["directory", "hardware", "vm"])
    create.add_argument(
        "--parent",
        required=True,
        help="the parent: a unique name or a path such as root/hardware/fedora",
    )
    create.add_argument("--description", default="")
    move = pool_sub.add_parser(
        "move", help="move a pool under another", description="move a pool under another"
    )
    move.add_argument("pool")
    move.add_argument("--parent", required=True)
    delete = pool_sub.add_parser(
        "delete", help="delete an empty pool", description="delete an empty pool"
    )
    delete.add_argument("pool")

    host = add("host", cmd_host, "list hosts or show one")
    host_sub = host.add_subparsers(dest="host_command", required=True, metavar="ACTION")
    host_list = host_sub.add_parser("list", help="every host", description="every host")
    host_list.add_argument("--state", default="", help="only hosts in this state, e.g. pending")
    show = host_sub.add_parser("show", help="one host, as JSON", description="one host, as JSON")
    show.add_argument("host", help="host name or UUID")
    approve = host_sub.add_parser(
        "approve",
        help="approve a pending host; the CA signs its certificate",
        description="approve a pending host; the CA signs its certificate",
    )
    approve.add_argument("host", help="host name or UUID")
    approve.add_argument("--pool", help="the hardware pool to put it in (default: where it is)")
    approve.add_argument("--reason", default="", help="a note for the audit log")
    reject = host_sub.add_parser(
        "reject",
        help="reject a host and revoke its certificates",
        description="reject a host and revoke its certificates",
    )
    reject.add_argument("host", help="host name or UUID")
    reject.add_argument("--reason", required=True, help="why (the audit log keeps it)")

    ca = add("ca", cmd_ca, "the app's certificate authority for node certificates")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    ca_sub.add_parser(
        "init",
        help="create the CA and the app's libvirt client certificate",
        description="create the CA and the app's libvirt client certificate",
    )
    ca_sub.add_parser(
        "show",
        help="subject, validity, SHA-256 fingerprint and paths",
        description="subject, validity, SHA-256 fingerprint and paths",
    )
    add_host = add("add-host", cmd_add_host, "issue a one-time token for a node to enroll with")
    add_host.add_argument("--pool", help="hardware pool the host lands in (default: default)")
    add_host.add_argument("--hostname", help="only a node with this host name may use it")
    add_host.add_argument("--expires", default="1h", help="lifetime: 30m, 1h, 2d (default 1h)")
    add_host.add_argument("--server", help="the URL nodes reach the app at, for the command")
    add_host.add_argument("--json", action="store_true", help="print one JSON object")

    enc = add("enc", cmd_enc, "Puppet's external node classifier: a certname's classes as YAML")
    enc.add_argument("certname", help="the node's Puppet certname (its host name)")
    node_config = add(
        "node-config", cmd_node_config, "write an approved node's config files under a directory"
    )
    node_config.add_argument("certname", help="the node's host name")
    node_config.add_argument("--out", required=True, metavar="DIR", help="e.g. DIR/etc/...")
    web_config = add(
        "web-config", cmd_web_config, "write the UI boxes' httpd conf under a directory"
    )
    web_config.add_argument("--out", required=True, metavar="DIR", help="e.g. DIR/etc/httpd/...")
    web_config.add_argument(
        "--balancer",
        action="store_true",
        help="the load balancer's conf instead: TLS in front of fedoracloud.web.backends",
    )

    user = add("user", cmd_user, "manage local (htpasswd) users")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = user_sub.add_parser(
        "add",
        help="add a user or set their password",
        description="add a user or set their password",
    )
    user_add.add_argument("username")
    user_add.add_argument(
        "--admin", action="store_true", help="make them super admin (a super_admin grant on root)"
    )
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )

    worker = add("worker", cmd_worker, "run a task worker (Celery on the ini's broker)")
    worker.add_argument(
        "--concurrency", type=int, default=4, help="tasks run at once (threads; default 4)"
    )
    worker.add_argument(
        "--no-sweep",
        action="store_true",
        help="leave re-sending lost tasks and retrying stuck ones to other workers",
    )
    worker.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING"])

    task = add("task", cmd_task, "list tasks, show one or cancel one")
    task_sub = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    task_list = task_sub.add_parser("list", help="newest first", description="newest first")
    task_list.add_argument(
        "--state", choices=["queued", "running", "finished", "failed", "canceled"]
    )
    task_list.add_argument("--kind", help="only this kind, e.g. vm.start")
    task_list.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    for name, what in (("show", "one task, as JSON"), ("cancel", "cancel a task")):
        p = task_sub.add_parser(name, help=what, description=what)
        p.add_argument("task", type=int, help="the task id")
    vm = add("vm", cmd_vm, "list VMs, show one, or print the domain XML the app would define")
    vm_sub = vm.add_subparsers(dest="vm_command", required=True, metavar="ACTION")
    vm_sub.add_parser("list", help="every VM", description="every VM")
    for name, what in (
        ("show", "one VM, as JSON"),
        ("xml", "the domain XML the app would define for a VM"),
    ):
        p = vm_sub.add_parser(name, help=what, description=what)
        p.add_argument("vm", help="VM name, UUID or id")
    events = add("events", cmd_events, "keep VM state current from libvirt's events")
    events.add_argument(
        "--reconcile-every", type=float, default=60.0, help="seconds between reconciles (60)"
    )
    events.add_argument(
        "--rescan-every", type=float, default=10.0, help="seconds between host rescans (10)"
    )
    events.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    console_proxy = add(
        "console-proxy", cmd_console_proxy, "run the console proxy (websockify) for noVNC"
    )
    console_proxy.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen (default: fedoracloud.console_proxy.address/port, 127.0.0.1:6080)",
    )
    console_proxy.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fedoracloud``."""
    args = build_parser().parse_args(argv)
    try:
        ctx = Context(args.config)
        args.func(ctx, args)
    except CliError as exc:
        print(f"fedoracloud: error: {exc}", file=sys.stderr)
        return exc.code
    except ServiceError as exc:
        print(f"fedoracloud: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except VirtError as exc:
        print(f"fedoracloud: error: libvirt: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        print(f"fedoracloud: error: database: {reason}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
