"""The split deployment on loopback, as ``deploy/`` describes it, started from one object.

``Cluster`` starts, each as a real process with its own log under ``base/logs``:

* the app instances: ``pserve`` on ``deploy/production.ini`` (the example production
  config, secrets from the environment), each on a free port;
* Apache (Debian's ``apache2 -DFOREGROUND`` with its own config, pid file and logs under
  ``base/apache``) in front of them: TLS with a self-signed certificate and
  ``mod_proxy_balancer``, its site config rendered by ``fedoracloud web-config --balancer``;
* ``fedoracloud worker`` processes on RabbitMQ (a queue name of this cluster's own);
* ``fedoracloud events`` listeners (one holds each host's advisory lock, the others wait);

on a database it is given (a scratch database on the running PostgreSQL, or one of a
``PrivatePostgres``) and a ``PrivateLibvirtd`` host whose guests are the tiny TCG guest.
The database is migrated with ``fedoracloud initdb``; a hardware pool ``rehearsal`` with the
libvirtd host (facts read by a reconcile) and a VM pool ``rehearsal-vms`` are made; the
local password file has a super admin.

``Client`` drives it through the front as a browser would: log in through the form, then
the JSON API with the session cookie and its CSRF token.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

import requests
import sqlalchemy as sa
from passlib.apache import HtpasswdFile

from fedoracloud.services.context import ServiceContext

from .services import PrivateLibvirtd, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_INI = os.path.join(ROOT, "deploy", "production.ini")
BIN = os.path.dirname(sys.executable)
FEDORACLOUD = os.path.join(BIN, "fedoracloud")
PSERVE = os.path.join(BIN, "pserve")
APACHE_MODULES = "/usr/lib/apache2/modules"
#: the modules the balancer's config needs (and the MPM)
APACHE_LOAD = (
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("alias_module", "mod_alias.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("ssl_module", "mod_ssl.so"),
    ("headers_module", "mod_headers.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
    ("proxy_wstunnel_module", "mod_proxy_wstunnel.so"),
    ("slotmem_shm_module", "mod_slotmem_shm.so"),
    ("lbmethod_byrequests_module", "mod_lbmethod_byrequests.so"),
    ("proxy_balancer_module", "mod_proxy_balancer.so"),
)
ADMIN, ADMIN_PASSWORD = "admin", "rehearsal-admin-" + "x" * 8
HOSTNAME = "node01.rehearsal.example"


def say(message: str) -> None:
    """Progress on stderr (the rehearsal's and the tests' -s output)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Proc:
    """One process of the cluster."""

    name: str
    argv: list[str]
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Timings:
    """How long each step took, in order (seconds)."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Any:
        started = time.monotonic()
        yield
        self.steps.append((name, time.monotonic() - started))
        say(f"[{self.steps[-1][1]:7.2f} s] {name}")

    def table(self) -> str:
        width = max((len(n) for n, _ in self.steps), default=10)
        return "\n".join(f"  {n:<{width}}  {s:7.2f} s" for n, s in self.steps)


class Cluster:
    """The deployment's processes on loopback (see the module doc)."""

    def __init__(
        self,
        base: str,
        database_url: str,
        broker_url: str,
        libvirtd: PrivateLibvirtd,
        *,
        instances: int = 2,
        workers: int = 2,
        listeners: int = 1,
        queue: str | None = None,
        extra: dict[str, str] | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.base = base
        self.database_url = database_url
        self.broker_url = broker_url
        self.libvirtd = libvirtd
        self.queue = queue or f"fedoracloud-rehearsal-{secrets.token_hex(4)}"
        self.extra = extra or {}
        self.timings = timings or Timings()
        self.logs = os.path.join(base, "logs")
        self.apache_dir = os.path.join(base, "apache")
        self.ini = os.path.join(base, "production.ini")
        self.https_port = free_port()
        self.http_port = free_port()
        self.console_port = free_port()
        self.web = [Proc(f"web{i + 1}", [], free_port()) for i in range(instances)]
        self.workers = [Proc(f"worker{i + 1}", []) for i in range(workers)]
        self.listeners = [Proc(f"events{i + 1}", []) for i in range(listeners)]
        self.apache = Proc("apache", [], self.https_port)
        self.env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            FEDORACLOUD_DATABASE_URL=database_url,
            FEDORACLOUD_BROKER_URL=broker_url,
            FEDORACLOUD_SESSION_SECRET=secrets.token_urlsafe(32),
            FEDORACLOUD_COLLECTD_PASSWORD="rehearsal-collectd-secret",
            FEDORACLOUD_ENC_TOKEN="rehearsal-enc-token-" + secrets.token_hex(8),
        )
        self.host_id = 0
        self.pools: dict[str, int] = {}
        self.engine = sa.create_engine(
            database_url, pool_pre_ping=True, pool_size=2, max_overflow=2
        )

    # -- configuration ---------------------------------------------------------------------

    @property
    def front(self) -> str:
        """The load balancer's URL."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def cert(self) -> str:
        return os.path.join(self.base, "tls", "fedoracloud.crt")

    def settings(self) -> dict[str, str]:
        """What the rehearsal changes in deploy/production.ini: loopback addresses and
        ports, the local password file instead of Fedora Accounts, files under base."""
        instance = os.path.join(self.base, "instance")
        return {
            "fedoracloud.instance_dir": instance,
            "fedoracloud.auth.backend": "htpasswd",
            "fedoracloud.htpasswd.file": os.path.join(instance, "htpasswd"),
            "fedoracloud.htpasswd.groups_file": os.path.join(instance, "groups"),
            "fedoracloud.admins": ADMIN,
            "fedoracloud.tasks.queue": self.queue,
            "fedoracloud.tasks.heartbeat": "1",
            "fedoracloud.tasks.sweep_interval": "1",
            "fedoracloud.tasks.resend_after": "3",
            "fedoracloud.tasks.retry_delay": "1",
            "fedoracloud.libvirt.domain_type": "qemu",
            "fedoracloud.libvirt.serial_log_dir": os.path.join(self.base, "serial"),
            "fedoracloud.ca.dir": os.path.join(self.base, "ca"),
            "fedoracloud.ca.client_dir": os.path.join(self.base, "libvirt-client"),
            "fedoracloud.enroll.server_url": self.front,
            "fedoracloud.public_url": self.front,
            "fedoracloud.server_name": "127.0.0.1",
            "fedoracloud.console_proxy.address": "127.0.0.1",
            "fedoracloud.console_proxy.port": str(self.console_port),
            "fedoracloud.web.certnames": "localhost",
            "fedoracloud.web.backends": " ".join(f"http://127.0.0.1:{p.port}" for p in self.web),
            "fedoracloud.web.http_port": str(self.http_port),
            "fedoracloud.web.https_port": str(self.https_port),
            "fedoracloud.web.tls_cert": self.cert,
            "fedoracloud.web.tls_key": os.path.join(self.base, "tls", "fedoracloud.key"),
            "fedoracloud.web.static_dir": os.path.join(ROOT, "fedoracloud", "static"),
            # no Cobbler box here: VMs are provisioned without a Cobbler system
            "fedoracloud.cobbler.url": "",
            "fedoracloud.cobbler.password": "",
            **self.extra,
        }

    def write_ini(self) -> None:
        """deploy/production.ini with the rehearsal's settings (secrets stay env:NAME)."""
        ini = configparser.RawConfigParser()
        ini.optionxform = str  # type: ignore[assignment,method-assign]
        ini.read(DEPLOY_INI)
        for key in list(ini["app:main"]):
            if key.startswith("fedoracloud.oidc."):
                del ini["app:main"][key]  # the local password file logs people in
        for key, value in self.settings().items():
            ini["app:main"][key] = value
        ini["alembic"]["script_location"] = os.path.join(ROOT, "alembic")
        with open(self.ini, "w", encoding="utf-8") as out:
            ini.write(out)

    def write_people(self) -> None:
        instance = os.path.join(self.base, "instance")
        os.makedirs(instance, exist_ok=True)
        ht = HtpasswdFile(
            os.path.join(instance, "htpasswd"), new=True, default_scheme="apr_md5_crypt"
        )
        ht.set_password(ADMIN, ADMIN_PASSWORD)
        ht.save()
        with open(os.path.join(instance, "groups"), "w", encoding="utf-8") as out:
            out.write(f"sysadmin-cloud: {ADMIN}\n")

    def write_certificate(self) -> None:
        tls = os.path.join(self.base, "tls")
        os.makedirs(tls, exist_ok=True)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-keyout", os.path.join(tls, "fedoracloud.key"), "-out", self.cert,
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def write_apache(self) -> str:
        """Apache's main config: the modules, loopback listeners, files under base, and the
        balancer's site config rendered by the app; returns its path."""
        run = os.path.join(self.apache_dir, "run")
        os.makedirs(run, exist_ok=True)
        # Apache's children run as www-data; its parent (root) opens the logs and keys
        os.chmod(self.apache_dir, 0o755)  # noqa: S103 - nothing secret in the directory itself
        os.chmod(run, 0o777)  # noqa: S103 - the children's runtime files (loopback test only)
        self.fc("web-config", "--balancer", "--out", os.path.join(self.apache_dir, "site"))
        site = os.path.join(
            self.apache_dir, "site", "etc", "httpd", "conf.d", "fedoracloud-balancer.conf"
        )
        lines = [f"LoadModule {name} {APACHE_MODULES}/{so}" for name, so in APACHE_LOAD]
        lines += [
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.http_port}",
            f"Listen 127.0.0.1:{self.https_port}",
            f"PidFile {self.apache_dir}/httpd.pid",
            f"DefaultRuntimeDir {run}",
            f"ErrorLog {self.apache_dir}/error.log",
            "LogLevel warn proxy:error proxy_balancer:error",
            'LogFormat "%h %t \\"%r\\" %>s %D %{BALANCER_WORKER_NAME}e" balanced',
            f"CustomLog {self.apache_dir}/access.log balanced",
            "User www-data",
            "Group www-data",
            "Mutex posixsem",
            f"SSLSessionCache shmcb:{run}/ssl_scache(512000)",
            "StartServers 1",
            "ServerLimit 2",
            "ThreadsPerChild 64",
            "MaxRequestWorkers 128",
            "KeepAlive On",
            f"Include {site}",
        ]
        path = os.path.join(self.apache_dir, "httpd.conf")
        with open(path, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        return path

    # -- processes ---------------------------------------------------------------------------

    def fc(self, *args: str, timeout: float = 120) -> str:
        """Run ``fedoracloud -c INI ARGS``; its output (RuntimeError with it on failure)."""
        proc = subprocess.run(
            [FEDORACLOUD, "-c", self.ini, *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"fedoracloud {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def spawn(self, proc: Proc) -> Proc:
        os.makedirs(self.logs, exist_ok=True)
        with open(os.path.join(self.logs, f"{proc.name}.log"), "ab") as log:
            proc.popen = subprocess.Popen(
                proc.argv,
                env=dict(self.env, FEDORACLOUD_DATABASE_URL=self.url_for(proc.name)),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return proc

    def start_web(self, proc: Proc) -> Proc:
        variables = [f"http_port={proc.port}", "http_host=127.0.0.1", "lb_address=127.0.0.1"]
        proc.argv = [PSERVE, self.ini, *variables]
        return self.spawn(proc)

    def start_worker(self, proc: Proc) -> Proc:
        proc.argv = [FEDORACLOUD, "-c", self.ini, "worker", "--concurrency", "2"]
        proc.argv += ["--loglevel", "WARNING"]
        return self.spawn(proc)

    def start_listener(self, proc: Proc) -> Proc:
        proc.argv = [FEDORACLOUD, "-c", self.ini, "events", "--rescan-every", "1"]
        proc.argv += ["--reconcile-every", "30"]
        return self.spawn(proc)

    def wait_web(self, proc: Proc, timeout: float = 60) -> None:
        def up() -> bool:
            if not proc.alive:
                raise RuntimeError(f"{proc.name} exited:\n{self.log_tail(proc.name)}")
            try:
                return requests.get(f"http://127.0.0.1:{proc.port}/login", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(up, timeout, f"{proc.name} to answer", every=0.2)

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Send a signal to one process of the cluster (SIGKILL: it dies at once)."""
        if proc.alive and proc.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
            proc.popen.wait(30)

    def log_tail(self, name: str, size: int = 3000) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.logs, f"{name}.log"), "rb") as f:
            return f.read()[-size:].decode("utf-8", "replace")
        return ""

    # -- the whole thing ---------------------------------------------------------------------

    def start(self) -> Cluster:
        """Configure, migrate, seed and start everything; timed step by step."""
        t = self.timings
        with t.step("configure (ini from deploy/production.ini, password file, TLS)"):
            os.makedirs(os.path.join(self.base, "serial"), exist_ok=True)
            self.write_ini()
            self.write_people()
            self.write_certificate()
        with t.step("fedoracloud initdb (Alembic to head)"):
            self.fc("initdb")
        with t.step("seed: hardware pool, VM pool, the libvirtd host (reconciled)"):
            self.seed()
        with t.step(f"start {len(self.web)} app instances (pserve)"):
            for proc in self.web:
                self.start_web(proc)
            for proc in self.web:
                self.wait_web(proc)
        with t.step("start Apache with mod_proxy_balancer (apache2 -t, then -DFOREGROUND)"):
            conf = self.write_apache()
            check = subprocess.run(
                ["apache2", "-t", "-f", conf], capture_output=True, text=True, check=False
            )
            if check.returncode != 0:
                raise RuntimeError(f"apache2 -t: {check.stderr.strip()}")
            self.apache.argv = ["apache2", "-DFOREGROUND", "-f", conf]
            self.spawn(self.apache)
            wait_for(self._front_up, 30, "Apache to answer", every=0.1)
        with t.step(
            f"start {len(self.workers)} workers and {len(self.listeners)} event listener(s)"
        ):
            for proc in self.workers:
                self.start_worker(proc)
            for proc in self.listeners:
                self.start_listener(proc)
            wait_for(self.listening, 60, "an event listener to hold the host's lock", every=0.2)
        return self

    def _front_up(self) -> bool:
        if not self.apache.alive:
            raise RuntimeError(f"apache2 exited:\n{self.log_tail('apache')}\n{self.apache_error()}")
        try:
            return requests.get(f"{self.front}/login", verify=self.cert, timeout=3).ok
        except requests.RequestException:
            return False

    def apache_error(self) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.apache_dir, "error.log")) as f:
            return f.read()[-3000:]
        return ""

    def listening(self) -> bool:
        """Whether some process holds the event-listener lock of the host."""
        from fedoracloud.services.vm_events import LOCK_NAMESPACE

        with self.engine.connect() as conn:
            return bool(
                conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND classid = :ns AND objid = :host AND granted"
                    ),
                    {"ns": LOCK_NAMESPACE, "host": self.host_id},
                )
            )

    def url_for(self, name: str) -> str:
        """The database URL a process uses: its name is its PostgreSQL application_name,
        so pg_stat_activity says which process holds which connection (and lock)."""
        url = sa.engine.make_url(self.database_url)
        return url.update_query_dict({"application_name": name}).render_as_string(False)

    def lock_holder(self) -> str | None:
        """The name of the process holding the host's event-listener lock."""
        from fedoracloud.services.vm_events import LOCK_NAMESPACE

        with self.engine.connect() as conn:
            return conn.scalar(
                sa.text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
                    " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = :ns"
                    " AND l.objid = :host AND l.granted"
                ),
                {"ns": LOCK_NAMESPACE, "host": self.host_id},
            )

    def seed(self) -> None:
        """The pools and the libvirtd host (its facts read by a reconcile)."""
        from sqlalchemy.orm import Session

        from fedoracloud.models import Host, PoolKind
        from fedoracloud.services.pools import PoolService
        from fedoracloud.services.vm_events import reconcile_host
        from fedoracloud.virt.connection import ConnectionPool
        from fedoracloud.virt.hypervisor import Hypervisor

        pool = ConnectionPool()
        with Session(self.engine) as session:
            pools = PoolService(ServiceContext.for_session(session))
            made = pools.ensure_builtin()
            hardware = pools.create("rehearsal", PoolKind.HARDWARE, made["hardware"])
            vms = pools.create("rehearsal-vms", PoolKind.VM, hardware)
            host = Host(
                uuid=self.libvirtd.host_uuid,
                hostname=HOSTNAME,
                pool_id=hardware.id,
                pool_kind="hardware",
                state="available",
                libvirt_uri=self.libvirtd.uri,
            )
            session.add(host)
            session.flush()
            reconcile_host(session, host, Hypervisor(self.libvirtd.uri, pool))
            if host.state != "available":
                raise RuntimeError(f"the libvirtd host is {host.state}: {host.state_reason}")
            session.commit()
            self.host_id = host.id
            self.pools = {"rehearsal": hardware.id, "rehearsal-vms": vms.id}
        pool.close_all()

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and let go of the database."""
        for proc in [*self.listeners, *self.workers, self.apache, *self.web]:
            if proc.alive and proc.popen is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in [*self.listeners, *self.workers, self.apache, *self.web]:
            if proc.popen is not None:
                try:
                    proc.popen.wait(15)
                except subprocess.TimeoutExpired:
                    self.kill(proc)
        self.engine.dispose()
        self.delete_queue()

    def delete_queue(self) -> None:
        """Delete the cluster's RabbitMQ queue and exchange."""
        from kombu import Connection

        with contextlib.suppress(Exception), Connection(self.broker_url, connect_timeout=3) as conn:
            channel = conn.channel()
            for delete in (channel.queue_delete, channel.exchange_delete):
                with contextlib.suppress(Exception):
                    delete(self.queue)

    # -- reading the database ------------------------------------------------------------------

    def scalar(self, query: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(query), params).scalar()

    def rows(self, query: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(query), params).all())


class ApiError(Exception):
    """An API call answered with an unexpected status."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.url}: {response.status_code}"
            f" {response.text[:500]}"
        )
        self.response = response


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """A logged-in browser session through the front: the form login, then JSON calls with
    the session cookie and its CSRF token (and the Origin header a browser sends)."""

    def __init__(self, front: str, cert: str, timeout: float = 30) -> None:
        self.front = front
        self.http = requests.Session()
        self.http.verify = cert
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would replace the front's certificate
        self.http.headers["Origin"] = front
        self.http.headers["Referer"] = front + "/"
        self.timeout = timeout
        self.csrf = ""

    def login(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> Client:
        page = self.http.get(f"{self.front}/login", timeout=self.timeout)
        page.raise_for_status()
        token = _CSRF.search(page.text)
        assert token is not None, page.text[:500]
        done = self.http.post(
            f"{self.front}/login",
            data={
                "csrf_token": token.group(1),
                "username": username,
                "password": password,
                "next": "/pools",
            },
            allow_redirects=False,
            timeout=self.timeout,
        )
        if done.status_code != 303:
            raise ApiError(done)
        pools = self.http.get(f"{self.front}/pools", timeout=self.timeout)
        pools.raise_for_status()
        found = _CSRF.search(pools.text)
        assert found is not None
        self.csrf = found.group(1)
        return self

    def clone(self) -> Client:
        """Another connection in the same session (requests.Session is one per thread)."""
        other = Client(self.front, str(self.http.verify), self.timeout)
        other.http.cookies.update(self.http.cookies)
        other.csrf = self.csrf
        return other

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """One request, whatever it answers."""
        return self.http.request(
            method,
            f"{self.front}{path}",
            json=body,
            headers={"X-CSRF-Token": self.csrf, **(headers or {})},
            timeout=self.timeout,
            allow_redirects=False,
        )

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: tuple[int, ...] = (200, 201, 202),
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A JSON call that must answer one of ``expect``; its body."""
        response = self.call(method, path, body, headers)
        if response.status_code not in expect:
            raise ApiError(response)
        return response.json()

    def vm(self, vm_id: int) -> dict[str, Any]:
        return self.api("GET", f"/api/v1/vms/{vm_id}")

    def wait_vm(self, vm_id: int, state: str, timeout: float) -> float:
        """Seconds until the API shows the VM in ``state``."""
        started = time.monotonic()
        wait_for(
            lambda: self.vm(vm_id)["state"] == state,
            timeout,
            f"VM {vm_id} to be {state}: {self.vm(vm_id)}",
        )
        return time.monotonic() - started

    def wait_task(self, task_id: int, timeout: float) -> dict[str, Any]:
        """The task once it ended (finished, failed or canceled)."""

        def ended() -> dict[str, Any] | None:
            task = self.api("GET", f"/api/v1/tasks/{task_id}")
            return task if task["state"] in ("finished", "failed", "canceled") else None

        return wait_for(ended, timeout, f"task {task_id} to end", every=0.1)


def guest_vm(cluster: Cluster, guest: Any, name: str) -> dict[str, Any]:
    """The create body of a VM that boots the tiny TCG guest on the cluster's host."""
    return {
        "name": name,
        "pool": cluster.pools["rehearsal-vms"],
        "vcpus": 1,
        "memory_mib": 128,
        "host": cluster.host_id,
        "boot": {
            "kernel": guest.kernel,
            "initrd": guest.initrd,
            "cmdline": "console=ttyS0 panic=-1 quiet",
        },
    }


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return str(uuidlib.uuid4())
