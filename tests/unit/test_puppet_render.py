"""The Puppet settings and the config renderer: bad settings are named, no value can
break out of its line, and the files say what the settings say."""

from __future__ import annotations

from typing import Any

import pytest

from fedoracloud.puppet import ConfigRenderer, RenderError, write_files
from fedoracloud.settings import ConfigError, PuppetSettings, Settings

BASE = {
    "sqlalchemy.url": "sqlite://",
    "fedoracloud.session_secret": "x" * 20,
    "fedoracloud.htpasswd.file": "/tmp/htpasswd",
}
GOOD = {
    "fedoracloud.management_network": "10.5.0.0/16",
    "fedoracloud.collectd.password": "signing-secret",
    "fedoracloud.console_proxy.address": "10.6.0.10",
}


def renderer(**extra: str) -> ConfigRenderer:
    return ConfigRenderer(PuppetSettings.from_dict({**GOOD, **extra}))


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("fedoracloud.management_network", "10.5.0.0/33", "fedoracloud.management_network"),
        ("fedoracloud.management_network", "not a network", "fedoracloud.management_network"),
        ("fedoracloud.collectd.port", "70000", "fedoracloud.collectd.port"),
        ("fedoracloud.collectd.port", "0", "fedoracloud.collectd.port"),
        ("fedoracloud.qpid.port", "five", "fedoracloud.qpid.port"),
        ("fedoracloud.qpid.broker", "qpid;rm -rf /", "fedoracloud.qpid.broker"),
        ("fedoracloud.collectd.server", 'a"b', "fedoracloud.collectd.server"),
        ("fedoracloud.server_name", "-bad-.example.org", "fedoracloud.server_name"),
        ("fedoracloud.web.certnames", "web01.example.org bad_name", "fedoracloud.web.certnames"),
        ("fedoracloud.console_proxy.address", "proxy.example.org", "console_proxy.address"),
        ("fedoracloud.collectd.password", 'pass"word', "fedoracloud.collectd.password"),
        ("fedoracloud.libvirt.client_dn", 'CN=a"]\nx', "fedoracloud.libvirt.client_dn"),
        ("fedoracloud.libvirt.ca_file", "relative/ca.pem", "fedoracloud.libvirt.ca_file"),
        ("fedoracloud.enc.unknown_node", "maybe", "fedoracloud.enc.unknown_node"),
        ("fedoracloud.enc.token", "short", "fedoracloud.enc.token"),
        ("fedoracloud.web.app_url", "ftp://x:1", "fedoracloud.web.app_url"),
        ("fedoracloud.puppet.manage_services", "perhaps", "fedoracloud.puppet.manage_services"),
    ],
)
def test_a_bad_setting_is_named(key: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        Settings.from_dict({**BASE, **GOOD, key: value})


def test_defaults_parse_and_an_unset_network_or_password_is_named_at_render_time() -> None:
    settings = Settings.from_dict(BASE).puppet
    assert settings.collectd_port == 25826 and settings.enc_unknown_node == "error"
    with pytest.raises(ConfigError, match=r"fedoracloud\.management_network: required"):
        ConfigRenderer(settings).node_files("node1.example.org")
    no_password = PuppetSettings.from_dict({"fedoracloud.management_network": "10.0.0.0/8"})
    with pytest.raises(ConfigError, match=r"fedoracloud\.collectd\.password: required"):
        ConfigRenderer(no_password).node_files("node1.example.org")
    with pytest.raises(ConfigError, match="IPv4"):
        renderer(**{"fedoracloud.management_network": "fd00::/64"}).node_files("n.example.org")


def test_node_files_carry_the_settings() -> None:
    files = {
        f.path: f.content
        for f in renderer(
            **{"fedoracloud.qpid.broker": "qpid.example.org", "fedoracloud.qpid.port": "5673"}
        ).node_files("Node1.Example.org")
    }
    assert set(files) == {
        "/etc/collectd.conf",
        "/etc/sysconfig/libvirt-qpid",
        "/etc/sysconfig/iptables",
        "/etc/libvirt/libvirtd.conf",
    }
    assert 'Hostname "node1.example.org"' in files["/etc/collectd.conf"]
    assert "SecurityLevel Sign" in files["/etc/collectd.conf"]
    assert (
        'LIBVIRT_QPID_ARGS="--broker qpid.example.org --port 5673"'
        in (files["/etc/sysconfig/libvirt-qpid"])
    )
    libvirtd = files["/etc/libvirt/libvirtd.conf"]
    assert "listen_tls = 1" in libvirtd and "listen_tcp = 0" in libvirtd
    assert 'tls_allowed_dn_list = ["CN=fedoracloud-app"]' in libvirtd
    rules = files["/etc/sysconfig/iptables"].splitlines()
    opened = [r for r in rules if r.startswith("-A INPUT") and r.endswith("-j ACCEPT")]
    for port in ("22", "7777", "16509", "16514", "5900:6000", "49152:49216"):
        assert any("-s 10.5.0.0/16 " in r and f"--dport {port} " in r for r in opened), port
    assert any("-s 10.6.0.10 " in r and "--dport 5900:6000 " in r for r in opened)
    assert all(" -s " in r for r in opened if "--dport" in r)  # none open to the world


@pytest.mark.parametrize(
    "hostname", ["node1.example.org\nLoadPlugin exec", 'node"1', "node 1", "", "a" * 300]
)
def test_a_host_name_that_could_inject_lines_is_refused(hostname: str) -> None:
    with pytest.raises(RenderError):
        renderer().node_files(hostname)


def test_a_value_with_a_newline_never_reaches_a_file() -> None:
    settings: Any = PuppetSettings.from_dict(GOOD)
    object.__setattr__(settings, "collectd_libvirt_uri", "qemu:///system\nLoadPlugin exec")
    with pytest.raises(RenderError, match="control character"):
        ConfigRenderer(settings).node_files("node1.example.org")


def test_web_conf_proxies_the_app_and_consoles_with_tls_and_headers() -> None:
    (conf,) = renderer(**{"fedoracloud.server_name": "cloud.example.org"}).web_files()
    assert conf.path == "/etc/httpd/conf.d/fedoracloud.conf"
    text = conf.content
    assert "ServerName cloud.example.org" in text and "SSLEngine on" in text
    assert 'ProxyPass /console/ "ws://10.6.0.10:6080/"' in text
    assert 'ProxyPass / "http://127.0.0.1:6543/"' in text
    assert "Strict-Transport-Security" in text and "X-Content-Type-Options" in text


def test_write_files_puts_them_at_their_real_paths(tmp_path: Any) -> None:
    written = write_files(renderer().node_files("node1.example.org"), str(tmp_path))
    assert len(written) == 4
    assert (tmp_path / "etc/sysconfig/iptables").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "etc/libvirt/libvirtd.conf").read_text().startswith("# Managed")


def test_libvirtd_accepts_the_client_certificate_the_app_s_ca_makes() -> None:
    from fedoracloud.pki import CLIENT_DN

    assert PuppetSettings().libvirt_client_dn == CLIENT_DN
    assert Settings.from_dict(BASE).puppet.libvirt_client_dn == CLIENT_DN
