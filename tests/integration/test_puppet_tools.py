"""Every file FedoraCloud renders for Puppet is accepted by its real tool.

collectd (``collectd -T -C``, with the virt plugin on a real libvirtd), iptables
(``iptables-restore --test`` in a user + network namespace), Puppet (``puppet parser
validate`` on the module, ``puppet apply`` of each class into a temporary root with the
project's own ENC as ``--external_nodes``), Apache (``apache2 -t -f`` with the modules the
conf uses) and libvirtd (started with the rendered libvirtd.conf, listening TLS on
loopback, reached by the app over ``qemu+tls://`` with CA-issued certificates).

The libvirtd runs in its own mount namespace with tmpfs over libvirt's state and runtime
directories, so it never clashes with another libvirtd on the machine.  The certificates
come from the app's own CA (``fedoracloud.pki``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from fedoracloud.models import Host, HostState
from fedoracloud.pki import CLIENT_DN, CaSettings, CertificateAuthority
from fedoracloud.puppet import ConfigRenderer, NodeNetwork
from fedoracloud.puppet.enc import node_networks
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.networks import NetworkInput, NetworkService
from fedoracloud.services.pools import PoolService
from fedoracloud.settings import Settings
from fedoracloud.virt.connection import VirtError, connect

from ..cli import fedoracloud
from ..collectd import collectd_pair, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "puppet" / "modules"
NODE, PENDING, WEB, STATS = (
    "node07.cloud.example.org",
    "node08.cloud.example.org",
    "web01.cloud.example.org",
    "stats.cloud.example.org",
)
ENC_TOKEN = "puppet-enc-token-0123456789abcdef"
NETWORKS = (
    {
        "name": "public",
        "usage": "guest",
        "interface": "eth1",
        "bridge": "brpublic",
        "cidr": "209.132.181.0/24",
    },
    {
        "name": "private",
        "kind": "vlan",
        "vlan_id": 126,
        "usage": "management",
        "interface": "eth0",
        "bridge": "brmgmt",
        "cidr": "10.5.126.0/24",
    },
)
FC = (sys.executable, "-W", "ignore", "-m", "fedoracloud.cli")
HTTP_ENC = ROOT / "puppet" / "enc" / "fedoracloud-enc"
TOOLS = ("collectd", "iptables-restore", "unshare", "puppet", "apache2", "libvirtd", "curl")
APACHE_MODULES = (
    "mpm_event",
    "authz_core",
    "alias",
    "headers",
    "socache_shmcb",
    "ssl",
    "proxy",
    "proxy_http",
    "proxy_wstunnel",
)


def run(
    *args: str, stdin: str | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- certificates --------------------------------------------------------------------------


def make_pki(directory: Path) -> dict[str, Path]:
    """The app's CA (``fedoracloud.pki``): its client certificate for the app, a node
    certificate for libvirtd on 127.0.0.1, and a node certificate used as a client that
    libvirtd must refuse (its DN is not the app's)."""
    ca = CertificateAuthority(CaSettings(str(directory / "ca"), str(directory / "client")))
    ca.init()
    paths = {
        "ca": Path(ca.settings.cert_path),
        "client": Path(ca.ensure_client_certificate()),
        "server_cert": directory / "servercert.pem",
        "server_key": directory / "serverkey.pem",
        "stranger": directory / "stranger",
    }
    for cert_path, key_path, hostname in (
        (paths["server_cert"], paths["server_key"], "localhost"),
        (paths["stranger"] / "clientcert.pem", paths["stranger"] / "clientkey.pem", "node99"),
    ):
        key = ec.generate_private_key(ec.SECP256R1())  # as fedoracloud-node makes it
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .sign(key, hashes.SHA256())
        )
        cert_path.parent.mkdir(exist_ok=True)
        cert_path.write_text(ca.sign_node_certificate(csr, hostname, "127.0.0.1").pem)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    shutil.copy(paths["ca"], paths["stranger"] / "cacert.pem")
    return paths


# -- the deployment under test ---------------------------------------------------------------


class Deployment:
    """An ini, its database with an approved and a pending host, the PKI and the paths."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pki = make_pki(self._dir("pki"))
        self.libvirt_run = self._dir("libvirt-run")
        self.target_root = self._dir("root")
        self.tls_port = free_port()
        self.collectd_port = free_port()
        self.settings = {
            "use": "egg:fedoracloud",
            "sqlalchemy.url": f"sqlite:///{base / 'fc.sqlite'}",
            "fedoracloud.session_secret": "puppet-test-secret-0123456789",
            "fedoracloud.htpasswd.file": str(base / "htpasswd"),
            "fedoracloud.instance_dir": str(base / "var"),
            "fedoracloud.server_name": "cloud.example.org",
            "fedoracloud.management_network": "10.5.0.0/16",
            "fedoracloud.console_proxy.address": "10.6.0.10",
            "fedoracloud.web.certnames": WEB,
            "fedoracloud.web.tls_cert": str(self.pki["server_cert"]),
            "fedoracloud.web.tls_key": str(self.pki["server_key"]),
            "fedoracloud.collectd.certname": STATS,
            "fedoracloud.collectd.server": "127.0.0.1",
            "fedoracloud.collectd.port": str(self.collectd_port),
            "fedoracloud.collectd.listen": "127.0.0.1",
            "fedoracloud.collectd.password": "signing-secret",
            "fedoracloud.collectd.data_dir": str(base / "rrd"),
            "fedoracloud.collectd.auth_file": "/etc/collectd.passwd",
            "fedoracloud.collectd.libvirt_uri": (
                f"qemu:///system?socket={self.libvirt_run}/libvirt-sock"
            ),
            "fedoracloud.qpid.broker": "qpid.cloud.example.org",
            "fedoracloud.qpid.port": "5672",
            "fedoracloud.libvirt.tls_port": str(self.tls_port),
            "fedoracloud.libvirt.client_dn": CLIENT_DN,
            "fedoracloud.libvirt.ca_file": str(self.pki["ca"]),
            "fedoracloud.libvirt.cert_file": str(self.pki["server_cert"]),
            "fedoracloud.libvirt.key_file": str(self.pki["server_key"]),
            "fedoracloud.puppet.target_root": str(self.target_root),
            "fedoracloud.puppet.manage_packages": "false",
            "fedoracloud.puppet.manage_services": "false",
            "fedoracloud.enc.token": ENC_TOKEN,
        }
        self.ini = base / "fedoracloud.ini"
        self.ini.write_text(
            "[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        )
        self.renderer = ConfigRenderer(Settings.from_dict(self.settings).puppet)

    def _dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir()
        return path

    def fc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``fedoracloud -c INI ARGS…``, in this process."""
        return fedoracloud("-c", str(self.ini), *args)

    def add_hosts(self) -> None:
        engine = sa.create_engine(self.settings["sqlalchemy.url"])
        with Session(engine) as session:
            default = PoolService(ServiceContext.for_session(session)).ensure_builtin()["default"]
            for hostname, state in ((NODE, HostState.AVAILABLE), (PENDING, HostState.PENDING)):
                session.add(
                    Host(uuid=str(uuid.uuid4()), hostname=hostname, pool=default, state=state)
                )
            # the seed's two networks, carried by every hardware pool's hosts
            networks = NetworkService(ServiceContext.for_session(session))
            for fields in NETWORKS:
                networks.create(NetworkInput.parse({**fields, "hardware_pools": [default.id]}))
            session.commit()
        engine.dispose()

    def node_networks(self) -> list[NodeNetwork]:
        """The networks the approved node carries, read back from the database."""
        engine = sa.create_engine(self.settings["sqlalchemy.url"])
        try:
            with Session(engine) as session:
                host = session.scalars(sa.select(Host).where(Host.hostname == NODE)).one()
                return node_networks(session, host)
        finally:
            engine.dispose()

    def files(self, which: str) -> dict[str, str]:
        rendered = {
            "node": lambda: self.renderer.node_files(NODE, self.node_networks()),
            "web": self.renderer.web_files,
            "collectd_server": self.renderer.collectd_server_files,
        }[which]()
        return {f.path: f.content for f in rendered}

    def write(self, name: str, content: str) -> Path:
        path = self.base / name
        path.write_text(content)
        return path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: Any) -> Deployment:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail("missing " + ", ".join(missing) + ": run scripts/install-system-packages test")
    made = Deployment(tmp_path_factory.mktemp("puppet"))
    initdb = made.fc("initdb")
    assert initdb.returncode == 0, initdb.stderr
    made.add_hosts()
    return made


@pytest.fixture(scope="module")
def libvirtd(deployment: Deployment) -> Iterator[Path]:
    """A real libvirtd started with the rendered libvirtd.conf, on loopback and its own
    TLS port, in a mount namespace of its own (tmpfs over libvirt's state directories)."""
    rendered = deployment.files("node")["/etc/libvirt/libvirtd.conf"]
    for key in ("listen_addr", "unix_sock_dir"):
        assert key not in rendered  # the test only adds what the node config leaves out
    conf = deployment.write(
        "libvirtd.conf",
        rendered
        + '\n# the test: loopback only, its own sockets\nlisten_addr = "127.0.0.1"\n'
        + f'unix_sock_dir = "{deployment.libvirt_run}"\n',
    )
    script = deployment.write(
        "libvirtd.sh",
        "set -e\nmount --make-rprivate /\n"
        "for d in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do\n"
        '  mkdir -p "$d"; mount -t tmpfs tmpfs "$d"\ndone\n'
        f'exec libvirtd --listen -f "{conf}" -p "{deployment.libvirt_run}/libvirtd.pid"\n',
    )
    log = (deployment.base / "libvirtd.log").open("w")
    daemon = subprocess.Popen(["unshare", "-m", "sh", str(script)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert daemon.poll() is None, (deployment.base / "libvirtd.log").read_text()
            sock = deployment.libvirt_run / "libvirt-sock"
            try:
                with socket.create_connection(("127.0.0.1", deployment.tls_port), timeout=1):
                    if sock.exists():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "libvirtd did not listen within 30 s"
            time.sleep(0.1)
        yield deployment.libvirt_run
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()


# -- collectd ------------------------------------------------------------------------------


def test_collectd_accepts_the_node_config_with_virt_on_a_running_libvirtd(
    deployment: Deployment, libvirtd: Path
) -> None:
    conf = deployment.write("node-collectd.conf", deployment.files("node")["/etc/collectd.conf"])
    checked = run("collectd", "-T", "-C", str(conf))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_collectd_refuses_a_broken_config(deployment: Deployment) -> None:
    conf = deployment.write("broken-collectd.conf", "LoadPlugin no_such_plugin_here\n")
    assert run("collectd", "-T", "-C", str(conf)).returncode != 0


def test_collectd_accepts_the_server_config(deployment: Deployment) -> None:
    files = deployment.files("collectd_server")
    conf = deployment.write("server-collectd.conf", files["/etc/collectd.conf"])
    checked = run("collectd", "-T", "-C", str(conf))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert files["/etc/collectd.passwd"] == "fedoracloud: signing-secret\n"


# -- iptables ------------------------------------------------------------------------------


def test_iptables_restore_accepts_the_node_firewall(deployment: Deployment) -> None:
    rules = deployment.files("node")["/etc/sysconfig/iptables"]
    checked = run("unshare", "-rn", "iptables-restore", "--test", stdin=rules)
    assert checked.returncode == 0, checked.stderr
    assert "-A INPUT -s 10.5.0.0/16 -p tcp" in rules
    assert "--dport 49152:49216" in rules and "-s 10.6.0.10 " in rules
    assert rules.rstrip().endswith("COMMIT")
    broken = rules.replace("--dport 5900:6000", "--dport 5900:nope", 1)
    assert run("unshare", "-rn", "iptables-restore", "--test", stdin=broken).returncode != 0


# -- Puppet --------------------------------------------------------------------------------


def test_puppet_parser_validates_the_module() -> None:
    manifests = sorted(str(p) for p in (MODULES / "fedoracloud" / "manifests").glob("*.pp"))
    assert len(manifests) == 3
    checked = run("puppet", "parser", "validate", *manifests)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def puppet_apply(
    deployment: Deployment, certname: str, enc: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``puppet apply`` of what the project's own ENC (``fedoracloud enc`` unless another
    is given) says for ``certname``."""
    if enc is None:
        enc = deployment.base / "enc"
    if not enc.exists():
        enc.write_text(
            "#!/bin/sh\n"
            f'exec "{sys.executable}" -W ignore -m fedoracloud.cli -c "{deployment.ini}"'
            ' enc "$1"\n'
        )
        enc.chmod(0o755)
    state = deployment.base / "puppet-state"
    return run(
        "puppet",
        "apply",
        "--modulepath",
        str(MODULES),
        "--node_terminus",
        "exec",
        "--external_nodes",
        str(enc),
        "--certname",
        certname,
        "--confdir",
        str(state / "conf"),
        "--vardir",
        str(state / "var"),
        "--logdir",
        str(state / "log"),
        "--rundir",
        str(state / "run"),
        "--codedir",
        str(state / "code"),
        "--detailed-exitcodes",
        "-e",
        "",
        timeout=300,
    )


def test_puppet_apply_of_the_node_class_writes_what_the_app_rendered(
    deployment: Deployment,
) -> None:
    applied = puppet_apply(deployment, NODE)
    assert applied.returncode == 2, applied.stdout + applied.stderr  # changes, no failures
    root = deployment.target_root
    for path, content in deployment.files("node").items():
        assert (root / path.lstrip("/")).read_text() == content, path
    assert (root / "etc/sysconfig/iptables").stat().st_mode & 0o777 == 0o600
    again = puppet_apply(deployment, NODE)
    assert again.returncode == 0, again.stdout + again.stderr  # nothing left to change
    checked = run(
        "unshare",
        "-rn",
        "iptables-restore",
        "--test",
        stdin=(root / "etc/sysconfig/iptables").read_text(),
    )
    assert checked.returncode == 0, checked.stderr


def test_puppet_apply_writes_the_nodes_bridges_and_vlan_as_the_shell_reads_them(
    deployment: Deployment,
) -> None:
    """The ifcfg files of the node's networks appear under network-scripts; sourced by a
    real shell, as Fedora's network scripts read them, they say what the networks say."""
    applied = puppet_apply(deployment, NODE)
    assert applied.returncode in (0, 2), applied.stdout + applied.stderr
    scripts = deployment.target_root / "etc/sysconfig/network-scripts"
    assert sorted(p.name for p in scripts.iterdir()) == [
        "ifcfg-brmgmt",
        "ifcfg-brpublic",
        "ifcfg-eth0.126",
        "ifcfg-eth1",
    ]
    names = ("DEVICE", "ONBOOT", "TYPE", "BOOTPROTO", "BRIDGE", "VLAN")

    def sourced(name: str) -> dict[str, str]:
        shell = run(
            "sh",
            "-c",
            f'set -eu; . "$1"; for v in {" ".join(names)}; do eval "echo $v=\\${{$v:-}}"; done',
            "sh",
            str(scripts / name),
        )
        assert shell.returncode == 0, shell.stderr
        return {k: v for k, v in (line.split("=", 1) for line in shell.stdout.split()) if v}

    assert sourced("ifcfg-eth1") == {
        "DEVICE": "eth1",
        "ONBOOT": "yes",
        "BOOTPROTO": "none",
        "BRIDGE": "brpublic",
    }
    assert sourced("ifcfg-eth0.126") == {
        "DEVICE": "eth0.126",
        "ONBOOT": "yes",
        "BOOTPROTO": "none",
        "BRIDGE": "brmgmt",
        "VLAN": "yes",
    }
    assert sourced("ifcfg-brmgmt") == {
        "DEVICE": "brmgmt",
        "ONBOOT": "yes",
        "TYPE": "Bridge",
        "BOOTPROTO": "dhcp",
    }
    assert sourced("ifcfg-brpublic")["BOOTPROTO"] == "none"
    files = deployment.files("node")
    for script in scripts.iterdir():
        assert script.read_text() == files[f"/etc/sysconfig/network-scripts/{script.name}"]


def test_puppet_apply_of_the_web_class(deployment: Deployment) -> None:
    applied = puppet_apply(deployment, WEB)
    assert applied.returncode == 2, applied.stdout + applied.stderr
    written = deployment.target_root / "etc/httpd/conf.d/fedoracloud.conf"
    assert written.read_text() == deployment.files("web")["/etc/httpd/conf.d/fedoracloud.conf"]


def test_puppet_apply_of_the_collectd_server_class(deployment: Deployment) -> None:
    applied = puppet_apply(deployment, STATS)
    assert applied.returncode == 2, applied.stdout + applied.stderr
    root = deployment.target_root
    files = deployment.files("collectd_server")
    assert (root / "etc/collectd.conf").read_text() == files["/etc/collectd.conf"]
    assert (root / "etc/collectd.passwd").read_text() == "fedoracloud: signing-secret\n"
    assert (root / "etc/collectd.passwd").stat().st_mode & 0o777 == 0o600


def test_puppet_apply_gives_a_pending_host_nothing_and_an_unknown_one_no_catalog(
    deployment: Deployment,
) -> None:
    enc = deployment.fc("enc", PENDING)
    assert enc.returncode == 0, enc.stderr
    assert yaml.safe_load(enc.stdout)["classes"] == {}
    pending = puppet_apply(deployment, PENDING)
    assert pending.returncode == 0, pending.stdout + pending.stderr
    unknown = deployment.fc("enc", "stranger.example.org")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert "unknown certname stranger.example.org" in unknown.stderr
    refused = puppet_apply(deployment, "stranger.example.org")
    assert refused.returncode == 1  # Puppet got no catalog
    assert "Failed to find stranger.example.org via exec" in refused.stderr


# -- Apache --------------------------------------------------------------------------------


def test_apache_accepts_the_web_conf(deployment: Deployment) -> None:
    conf = deployment.write(
        "fedoracloud-httpd.conf", deployment.files("web")["/etc/httpd/conf.d/fedoracloud.conf"]
    )
    run_dir = deployment.base / "httpd"
    run_dir.mkdir(exist_ok=True)
    modules = "".join(
        f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n" for m in APACHE_MODULES
    )
    main = deployment.write(
        "httpd-main.conf",
        f"ServerRoot /etc/apache2\nServerName localhost\nPidFile {run_dir}/httpd.pid\n"
        f"ErrorLog {run_dir}/error.log\nMutex file:{run_dir}\n{modules}"
        f"Listen 127.0.0.1:{free_port()}\nListen 127.0.0.1:{free_port()} https\n"
        f"Include {conf}\n",
    )
    checked = run("apache2", "-t", "-f", str(main))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Syntax OK" in checked.stderr
    without_ssl = deployment.write(
        "httpd-main-no-ssl.conf", main.read_text().replace("LoadModule ssl_module", "#")
    )
    assert run("apache2", "-t", "-f", str(without_ssl)).returncode != 0


# -- libvirtd over TLS ---------------------------------------------------------------------


def test_the_app_reaches_libvirtd_over_tls_with_its_client_certificate(
    deployment: Deployment, libvirtd: Path
) -> None:
    uri = f"qemu+tls://127.0.0.1:{deployment.tls_port}/system?pkipath={deployment.pki['client']}"
    with connect(uri) as conn:
        assert conn.getLibVersion() >= 9_000_000
        assert conn.getURI().startswith("qemu")


def test_libvirtd_refuses_a_certificate_outside_the_allowed_dn_list(
    deployment: Deployment, libvirtd: Path
) -> None:
    uri = f"qemu+tls://127.0.0.1:{deployment.tls_port}/system?pkipath={deployment.pki['stranger']}"
    with pytest.raises(VirtError), connect(uri):
        pass


# -- the HTTP ENC, as a puppetserver uses it ---------------------------------------------------


@pytest.fixture(scope="module")
def served_app(deployment: Deployment) -> Iterator[str]:
    """``fedoracloud serve`` on a loopback port; its ENC base URL."""
    port = free_port()
    log = (deployment.base / "serve.log").open("w")
    server = subprocess.Popen(
        [*FC, "-c", str(deployment.ini), "serve", "--port", str(port)],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (deployment.base / "serve.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not listen within 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/puppet/enc"
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def http_enc(deployment: Deployment, url: str, token: str) -> Path:
    token_file = deployment.write(f"enc-token-{len(token)}", token + "\n")
    wrapper = deployment.base / f"http-enc-{len(token)}"
    wrapper.write_text(
        f"#!/bin/sh\nFEDORACLOUD_ENC_URL={url} FEDORACLOUD_ENC_TOKEN_FILE={token_file}"
        f' exec {HTTP_ENC} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_the_http_enc_script_gives_puppet_the_same_document(
    deployment: Deployment, served_app: str
) -> None:
    enc = http_enc(deployment, served_app, ENC_TOKEN)
    answer = run(str(enc), NODE)
    assert answer.returncode == 0, answer.stderr
    assert yaml.safe_load(answer.stdout) == yaml.safe_load(deployment.fc("enc", NODE).stdout)
    unknown = run(str(enc), "stranger.example.org")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert "HTTP 404: unknown certname stranger.example.org" in unknown.stderr
    refused = run(str(http_enc(deployment, served_app, "not-the-token")), NODE)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "HTTP 401" in refused.stderr
    applied = puppet_apply(deployment, WEB, enc=enc)
    assert applied.returncode in (0, 2), applied.stdout + applied.stderr
    written = deployment.target_root / "etc/httpd/conf.d/fedoracloud.conf"
    assert written.read_text() == deployment.files("web")["/etc/httpd/conf.d/fedoracloud.conf"]


def test_a_node_s_collectd_reaches_the_collectd_server_signed(
    deployment: Deployment, libvirtd: Path
) -> None:
    """The two rendered collectd configs work together: the node signs with the password
    the server's AuthFile holds, and the server writes the node's RRD files."""
    server_files = deployment.files("collectd_server")
    auth_file = deployment.write("collectd.passwd", server_files["/etc/collectd.passwd"])
    with collectd_pair(
        deployment.base,
        server_files["/etc/collectd.conf"],
        deployment.files("node")["/etc/collectd.conf"],
        auth_file,
    ) as processes:
        wanted = deployment.base / "rrd" / NODE / "load" / "load.rrd"
        cpu = deployment.base / "rrd" / NODE / "cpu-0"
        # the cpu plugin reports from its second reading on, after load: wait for both
        wait_until(
            lambda: wanted.exists() and cpu.is_dir(), processes, 40, "no load and cpu RRD files"
        )


def test_node_config_and_web_config_write_the_rendered_files(
    deployment: Deployment, tmp_path: Path
) -> None:
    written = deployment.fc("node-config", NODE, "--out", str(tmp_path / "node"))
    assert written.returncode == 0, written.stderr
    for path, content in deployment.files("node").items():
        assert (tmp_path / "node" / path.lstrip("/")).read_text() == content
        assert str(tmp_path / "node" / path.lstrip("/")) in written.stdout
    web = deployment.fc("web-config", "--out", str(tmp_path / "web"))
    assert web.returncode == 0, web.stderr
    conf = tmp_path / "web/etc/httpd/conf.d/fedoracloud.conf"
    assert conf.read_text() == deployment.files("web")["/etc/httpd/conf.d/fedoracloud.conf"]
    pending = deployment.fc("node-config", PENDING, "--out", str(tmp_path / "pending"))
    assert pending.returncode == 1 and "is pending" in pending.stderr
    assert not (tmp_path / "pending").exists()
    unknown = deployment.fc("node-config", "nobody.example.org", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 1 and "no host is named nobody.example.org" in unknown.stderr


def test_enc_with_a_missing_setting_prints_no_document(deployment: Deployment) -> None:
    ini = deployment.write(
        "no-network.ini",
        deployment.ini.read_text().replace("fedoracloud.management_network", "#"),
    )
    answer = fedoracloud("-c", str(ini), "enc", NODE)
    assert (answer.returncode, answer.stdout) == (2, "")
    assert "fedoracloud.management_network: required" in answer.stderr
    bad = deployment.write(
        "bad-port.ini",
        deployment.ini.read_text().replace(
            "fedoracloud.qpid.port = 5672", "fedoracloud.qpid.port = 99999"
        ),
    )
    refused = fedoracloud("-c", str(bad), "enc", NODE)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "setting fedoracloud.qpid.port: a port is at most 65535" in refused.stderr
