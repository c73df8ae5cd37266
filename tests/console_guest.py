"""A real TCG guest with a VNC display, for the console tests.

The tiny guest of :mod:`tests.libvirtd` booted on the machine's libvirtd with VNC on
127.0.0.1 (autoport) and its kernel writing to the VGA console too (``console=tty0``),
so the display shows text a browser can see drawn.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import libvirt
from sqlalchemy.orm import Session

from fedoracloud.models import Host, Pool, Vm
from fedoracloud.virt.console import vnc_display
from fedoracloud.virt.domain import DirectBoot, GraphicsSpec
from fedoracloud.virt.hypervisor import hypervisor

from .libvirtd import SYSTEM_URI, Guest


@dataclass(frozen=True)
class VncGuest:
    """A running domain on ``qemu:///system`` and the port of its VNC display."""

    name: str
    uuid: str
    port: int
    uri: str = SYSTEM_URI


@contextmanager
def vnc_guest(guest: Guest, prefix: str, log_dir: str) -> Iterator[VncGuest]:
    """Define and start the guest with VNC, named ``PREFIX-<random>`` (test runs and
    parallel workers share the machine's libvirtd); destroy and undefine it afterwards."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    spec = guest.spec(
        name,
        os.path.join(log_dir, f"{name}.log"),
        direct_boot=DirectBoot(guest.kernel, guest.initrd, "console=tty0 console=ttyS0 panic=-1"),
        graphics=GraphicsSpec(listen="127.0.0.1"),
    )
    with hypervisor(SYSTEM_URI) as hv:
        hv.define(spec)
        try:
            hv.start(spec.uuid)
            yield VncGuest(name, spec.uuid, vnc_display(hv, spec.uuid).port)
        finally:
            conn = hv.connection()
            try:
                dom = conn.lookupByUUIDString(spec.uuid)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass


def record_guest(
    session: Session, guest: VncGuest, hardware: Pool, vm_pool: Pool, host_uuid: str
) -> int:
    """Record the guest as a running VM of a host on ``qemu:///system`` (hardware pool
    ``hardware``, VM pool ``vm_pool``), as the app would know it; returns the VM's id."""
    host = Host(
        uuid=host_uuid,
        hostname="localhost",
        pool_id=hardware.id,
        state="available",
        libvirt_uri=guest.uri,
    )
    session.add(host)
    session.flush()
    vm = Vm(uuid=guest.uuid, name=guest.name, pool_id=vm_pool.id, host_id=host.id, state="running")
    session.add(vm)
    session.flush()
    return vm.id
