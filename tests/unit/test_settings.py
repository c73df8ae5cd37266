"""Settings: read once, typed, and every bad value named in a one-line error."""

from __future__ import annotations

import pytest

from fedoracloud.settings import ConfigError, LibvirtSettings, Settings

GOOD = {
    "sqlalchemy.url": "sqlite:///x.sqlite",
    "fedoracloud.session_secret": "s" * 32,
    "fedoracloud.htpasswd.file": "/tmp/ht",
}


def test_defaults():
    settings = Settings.from_dict(GOOD)
    assert settings.auth_backend == "htpasswd"
    assert settings.access_group == "sysadmin-cloud"
    assert settings.membership_ttl == 900
    assert settings.secure_cookies is True
    assert settings.page_size == 25


def test_admins_and_booleans():
    settings = Settings.from_dict(
        {**GOOD, "fedoracloud.admins": "admin, ops\nroot", "fedoracloud.secure_cookies": "no"}
    )
    assert settings.admins == ("admin", "ops", "root")
    assert settings.secure_cookies is False


def test_env_values(monkeypatch):
    monkeypatch.setenv("FC_TEST_SECRET", "from-the-environment-123")
    settings = Settings.from_dict({**GOOD, "fedoracloud.session_secret": "env:FC_TEST_SECRET"})
    assert settings.session_secret == "from-the-environment-123"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sqlalchemy.url": ""}, "setting sqlalchemy.url: missing"),
        ({"sqlalchemy.url": "not a url"}, "setting sqlalchemy.url: not a database URL"),
        ({"fedoracloud.session_secret": "short"}, "setting fedoracloud.session_secret"),
        ({"fedoracloud.auth.backend": "kerberos"}, "setting fedoracloud.auth.backend"),
        ({"fedoracloud.htpasswd.file": ""}, "setting fedoracloud.htpasswd.file"),
        ({"fedoracloud.secure_cookies": "maybe"}, "setting fedoracloud.secure_cookies"),
        ({"fedoracloud.page_size": "lots"}, "setting fedoracloud.page_size"),
        ({"fedoracloud.page_size": "0"}, "setting fedoracloud.page_size: must be at least 1"),
        ({"fedoracloud.membership_ttl": "-5"}, "setting fedoracloud.membership_ttl"),
        ({"fedoracloud.libvirt.uri_template": "qemu:///system"}, "must contain {hostname}"),
        (
            {"fedoracloud.libvirt.domain_type": "xen"},
            "setting fedoracloud.libvirt.domain_type: kvm, qemu or test, not 'xen'",
        ),
        (
            {"fedoracloud.session_secret": "env:FC_SURELY_UNSET_VARIABLE"},
            "FC_SURELY_UNSET_VARIABLE is not set",
        ),
    ],
)
def test_bad_settings_name_the_setting(change, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Settings.from_dict({**GOOD, **change})


def test_libvirt_settings_are_typed_and_travel_with_a_task():
    settings = Settings.from_dict(
        {
            **GOOD,
            "fedoracloud.libvirt.domain_type": "qemu",
            "fedoracloud.libvirt.serial_log_dir": "/var/log/fc-serial",
        }
    )
    libvirt = settings.libvirt
    assert libvirt.uri_template == "qemu+tls://{hostname}/system"
    assert (libvirt.domain_type, libvirt.serial_log_dir) == ("qemu", "/var/log/fc-serial")
    assert libvirt.save_dir == "/var/lib/libvirt/qemu/save"
    options = libvirt.task_options()  # what a VM task carries: what differs from defaults
    assert options == {
        "fedoracloud.libvirt.domain_type": "qemu",
        "fedoracloud.libvirt.serial_log_dir": "/var/log/fc-serial",
    }
    assert LibvirtSettings.from_dict(options) == libvirt
