"""The libvirt section (``fedoracloud.libvirt.*``): how the app reaches the nodes' libvirtd
and how it defines their VMs.

A VM task carries the options it runs with (:meth:`LibvirtSettings.task_options`, the
ini's keys and values), so that a worker defines the domain the app showed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import ConfigError, read_text

URI_TEMPLATE_KEY = "fedoracloud.libvirt.uri_template"
DOMAIN_TYPE_KEY = "fedoracloud.libvirt.domain_type"
SAVE_DIR_KEY = "fedoracloud.libvirt.save_dir"
SERIAL_LOG_DIR_KEY = "fedoracloud.libvirt.serial_log_dir"
DOMAIN_TYPES = ("kvm", "qemu", "test")


@dataclass(frozen=True)
class LibvirtSettings:
    """``uri_template``: a node's libvirt URI from its host name; ``domain_type``: ``kvm``
    in production, ``qemu`` (TCG) where KVM does not work, ``test`` for libvirt's test
    driver; ``save_dir``: where a saved VM's memory goes on its host; ``serial_log_dir``:
    where its serial console is logged (empty: not logged)."""

    uri_template: str = "qemu+tls://{hostname}/system"
    domain_type: str = "kvm"
    save_dir: str = "/var/lib/libvirt/qemu/save"
    serial_log_dir: str = ""

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> LibvirtSettings:
        """Validate ``fedoracloud.libvirt.*``; ConfigError names the first bad setting."""
        template = read_text(settings, URI_TEMPLATE_KEY, cls.uri_template)
        if "{hostname}" not in template:
            raise ConfigError(f"setting {URI_TEMPLATE_KEY}: must contain {{hostname}}")
        domain_type = read_text(settings, DOMAIN_TYPE_KEY, cls.domain_type)
        if domain_type not in DOMAIN_TYPES:
            raise ConfigError(f"setting {DOMAIN_TYPE_KEY}: kvm, qemu or test, not {domain_type!r}")
        return cls(
            uri_template=template,
            domain_type=domain_type,
            save_dir=read_text(settings, SAVE_DIR_KEY, cls.save_dir),
            serial_log_dir=read_text(settings, SERIAL_LOG_DIR_KEY),
        )

    def task_options(self) -> dict[str, str]:
        """The options a VM task carries, as the ini spells them (read back by from_dict):
        those that differ from the defaults."""
        default = LibvirtSettings()
        options = {
            DOMAIN_TYPE_KEY: self.domain_type,
            SAVE_DIR_KEY: self.save_dir,
            SERIAL_LOG_DIR_KEY: self.serial_log_dir,
        }
        defaults = (default.domain_type, default.save_dir, default.serial_log_dir)
        return {
            key: value
            for (key, value), same in zip(options.items(), defaults, strict=True)
            if value != same
        }
