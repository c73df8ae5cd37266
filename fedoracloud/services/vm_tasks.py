"""The worker's side of the VM lifecycle: what each ``vm.*`` task does on libvirt.

A request only checks and queues (``services/vms.py``); the worker runs these, through
the one Hypervisor interface of ``fedoracloud/virt``.  Each handler is idempotent (a
retried task finds the work done and says so), sets the VM's state from what libvirt
reports when the action returns (events may have done it already), and on failure puts
the VM back in the state libvirt reports, with the reason, before the task fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from ..models import Host, Network, Task, Vm, VmState
from ..models.meta import utcnow
from ..virt.connection import ConnectionPool, HostUnreachable, VirtError
from ..virt.domain import (
    DirectBoot,
    DiskSpec,
    DomainSpec,
    GraphicsSpec,
    NicSpec,
    SerialSpec,
    build_domain_xml,
)
from ..virt.hypervisor import Hypervisor, MigrationFailed, MigrationProgress, NoSuchDomain
from . import Conflict, NotFound, ServiceError
from .audit import record
from .cobbler import create_system_for_vm, remove_system
from .context import ServiceContext
from .networks import NetworkService
from .storage import StorageService, network_disk_for
from .tasks import error_message, progress, register
from .vms import ACTIONS, libvirt_settings

log = logging.getLogger(__name__)

Progress = Callable[[int, str], None]


def domain_spec(dbsession: Session, vm: Vm, settings: Any, host: Host | None = None) -> DomainSpec:
    """What the app defines for a VM, from its rows: name, UUID, size, boot, disks, NICs on
    their networks' bridges, VNC with autoport, a serial console."""
    host = host or vm.host
    disks = []
    for disk in vm.disks:
        network_disk = network_disk_for(dbsession, disk)  # a LUN qemu logs in to itself
        if network_disk is not None:
            disks.append(network_disk)
            continue
        if not disk.path:
            raise Conflict(
                f"disk {disk.target_dev} of {vm.name} has no volume yet; the VM's create task"
                " makes it"
            )
        kind = "block" if disk.path.startswith("/dev/") else "file"
        disks.append(DiskSpec(target=disk.target_dev, source=disk.path, kind=kind, bus=disk.bus))
    nics = []
    for nic in vm.nics:
        network = dbsession.get(Network, nic.network_id) if nic.network_id else None
        if network is None:
            raise Conflict(f"NIC {nic.mac} of {vm.name} is on no network")
        nics.append(NicSpec(mac=nic.mac, bridge=network.bridge, model=nic.model))
    # VNC listens on every address of whichever host runs the VM (a live migration keeps
    # the listen address, so a host's own address would not exist on the next one); the
    # nodes' firewall opens 5900-6000 to the management network only
    listen = "0.0.0.0"  # noqa: S104
    log_dir = libvirt_settings(settings).serial_log_dir
    direct = None
    if vm.boot_kernel:
        direct = DirectBoot(vm.boot_kernel, vm.boot_initrd, vm.boot_cmdline or "")
    return DomainSpec(
        name=vm.name,
        uuid=vm.uuid,
        vcpus=vm.vcpus,
        memory_mib=vm.memory_mib,
        virt_type=libvirt_settings(settings).domain_type,
        arch=vm.arch or "x86_64",
        boot=tuple(o for o in (vm.boot_order or "hd").split(",") if o) if not direct else (),
        direct_boot=direct,
        disks=tuple(disks),
        nics=tuple(nics),
        graphics=GraphicsSpec(listen=listen),
        serial=SerialSpec(log_path=os.path.join(log_dir, f"{vm.uuid}.log") if log_dir else None),
    )


def domain_xml(dbsession: Session, vm: Vm, settings: Any) -> str:
    """The domain XML the app would define for a VM (``fedoracloud vm xml``)."""
    return build_domain_xml(domain_spec(dbsession, vm, settings))


class VmWork:
    """Carries out one ``vm.*`` task on libvirt and records the outcome on the VM."""

    def __init__(
        self,
        dbsession: Session,
        settings: Any,
        pool: ConnectionPool | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.dbsession = dbsession
        self.ctx = ServiceContext.for_session(dbsession)
        self.settings = settings
        self.pool = pool
        self.progress = progress or (lambda percent, message: None)

    def hypervisor(self, host: Host) -> Hypervisor:
        """The Hypervisor of a host (its shared connection)."""
        return Hypervisor(host.libvirt_uri, self.pool)

    def run(self, task: Task) -> str:
        """Do the task; return what happened in a sentence (the task's message)."""
        action = task.kind.removeprefix("vm.")
        vm = self.dbsession.get(Vm, task.target_id)
        if vm is None:
            if action == "delete":
                return "the VM was already deleted"
            raise NotFound(f"VM {task.target_id} no longer exists")
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            raise ServiceError(f"no handler for task kind {task.kind!r}")
        bind = self.dbsession.get_bind()
        if bind.dialect.name == "sqlite":
            # SQLite (the demo): take the write lock now, so that the event service's
            # writes wait for this task instead of deadlocking with it
            self.dbsession.execute(
                update(Vm).where(Vm.id == vm.id).values(updated_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
        try:
            return str(handler(vm, dict(task.args or {})))
        except HostUnreachable:
            raise  # retried by the runner; the event listener marks the host and its VMs
        except Exception as exc:
            self._settle(vm, error_message(exc))
            raise

    # -- state bookkeeping -----------------------------------------------------------------

    def _mark(self, vm: Vm, state: VmState, reason: str = "") -> None:
        vm.state = state.value
        vm.state_reason = reason[:2000]
        vm.updated_at = utcnow()
        self.dbsession.flush()

    def _settle(self, vm: Vm, reason: str) -> None:
        """After a failure: the state libvirt reports (unknown if it cannot say), with the
        reason.  The handler's transaction is rolled back when the task fails, so the same
        is written again after that rollback, in a transaction of its own."""
        state = VmState.STOPPED if vm.host is None else VmState.UNKNOWN
        if vm.host is not None:
            try:
                state = VmState(self.hypervisor(vm.host).state(vm.uuid).state)
            except NoSuchDomain:
                state = VmState.STOPPED
            except (VirtError, ValueError):
                state = VmState.UNKNOWN
        self._mark(vm, state, reason)
        manager = self.dbsession.info.get("transaction_manager")
        engine = self.dbsession.get_bind()
        if manager is None or not isinstance(engine, Engine):
            return  # not a worker's transaction (tests hand in a connection)
        values = {"state": state.value, "state_reason": reason[:2000], "updated_at": utcnow()}
        vm_id = vm.id

        def write(*_args: Any) -> None:
            with engine.begin() as conn:
                conn.execute(update(Vm).where(Vm.id == vm_id).values(**values))

        manager.get().addAfterAbortHook(write)

    def _observe(self, vm: Vm, hv: Hypervisor, transitional: str) -> None:
        """Take libvirt's state now, unless an event already moved the VM on."""
        self.dbsession.refresh(vm, ["state"])
        if vm.state != transitional:
            return
        try:
            state = hv.state(vm.uuid).state
        except NoSuchDomain:
            state = VmState.STOPPED.value
        self._mark(vm, VmState(state))

    def _host(self, vm: Vm, args: dict[str, Any]) -> Host:
        host_id = args.get("host") or vm.host_id
        host = self.dbsession.get(Host, host_id) if host_id else None
        if host is None:
            raise Conflict(f"VM {vm.name} is on no host")
        return host

    # -- the actions -----------------------------------------------------------------------

    def do_create(self, vm: Vm, args: dict[str, Any]) -> str:
        """Make the volumes its disks ask for, then define the domain on the VM's host if it
        has one (else at its first start); a VM with a Cobbler profile gets its system."""
        StorageService(self.ctx, connections=self.pool).create_volumes_for_vm(vm)
        if vm.boot_profile and vm.boot_kind in ("profile", "image"):
            create_system_for_vm(self.dbsession, vm)
        if vm.host is None:
            self._mark(vm, VmState.STOPPED)
            return f"{vm.name} is ready; it is defined on a host when it first starts"
        self.hypervisor(vm.host).define(domain_spec(self.dbsession, vm, self.settings))
        self._mark(vm, VmState.STOPPED)
        return f"{vm.name} defined on {vm.host.hostname}"

    def do_start(self, vm: Vm, args: dict[str, Any]) -> str:
        """(Re)define the domain on the placed host from the rows, then boot it."""
        host = self._host(vm, args)
        hv = self.hypervisor(host)
        if hv.exists(vm.uuid) and hv.state(vm.uuid).active:
            self._observe(vm, hv, vm.state)
            return f"{vm.name} was already running on {host.hostname}"
        StorageService(self.ctx, connections=self.pool).create_volumes_for_vm(vm)
        hv.define(domain_spec(self.dbsession, vm, self.settings, host))
        hv.start(vm.uuid)
        vm.host_id = host.id
        self._observe(vm, hv, VmState.CREATING.value)
        return f"{vm.name} started on {host.hostname}"

    def _simple(self, vm: Vm, what: str, call: Callable[[Hypervisor], None], done: str) -> str:
        host = self._host(vm, {})
        hv = self.hypervisor(host)
        transitional = vm.state
        call(hv)
        self._observe(vm, hv, transitional)
        return f"{vm.name} {done} on {host.hostname}"

    def do_shutdown(self, vm: Vm, args: dict[str, Any]) -> str:
        """Press the ACPI power button; the guest's own shutdown ends in a stopped event."""
        host = self._host(vm, {})
        self.hypervisor(host).shutdown(vm.uuid)
        return f"{vm.name} was asked to shut down (ACPI); power it off if it does not"

    def do_poweroff(self, vm: Vm, args: dict[str, Any]) -> str:
        """Pull the plug (a domain already off is fine)."""
        host = self._host(vm, {})
        hv = self.hypervisor(host)
        if not hv.exists(vm.uuid) or not hv.state(vm.uuid).active:
            self._mark(vm, VmState.STOPPED)
            return f"{vm.name} was already off"
        return self._simple(vm, "powering off", lambda h: h.destroy(vm.uuid), "powered off")

    def do_suspend(self, vm: Vm, args: dict[str, Any]) -> str:
        """Pause the guest (its memory stays on the host)."""
        return self._simple(vm, "suspending", lambda h: h.suspend(vm.uuid), "paused")

    def do_resume(self, vm: Vm, args: dict[str, Any]) -> str:
        """Let a paused guest run again."""
        return self._simple(vm, "resuming", lambda h: h.resume(vm.uuid), "resumed")

    def do_reboot(self, vm: Vm, args: dict[str, Any]) -> str:
        """Ask the guest to reboot (ACPI)."""
        return self._simple(vm, "rebooting", lambda h: h.reboot(vm.uuid), "was asked to reboot")

    def save_path(self, vm: Vm) -> str:
        """Where the host keeps a saved VM's memory."""
        directory = libvirt_settings(self.settings).save_dir
        return os.path.join(directory, f"{vm.uuid}.save")

    def do_save(self, vm: Vm, args: dict[str, Any]) -> str:
        """Write the guest's memory to a file on its host and stop it."""
        host = self._host(vm, {})
        self.hypervisor(host).save(vm.uuid, self.save_path(vm))
        self._mark(vm, VmState.SAVED)
        return f"{vm.name} saved on {host.hostname}"

    def do_restore(self, vm: Vm, args: dict[str, Any]) -> str:
        """Run a saved guest again from its file."""
        host = self._host(vm, {})
        hv = self.hypervisor(host)
        hv.restore(self.save_path(vm))
        self._observe(vm, hv, VmState.RESTORING.value)
        return f"{vm.name} restored on {host.hostname}"

    def do_delete(self, vm: Vm, args: dict[str, Any]) -> str:
        """Undefine the domain (its volumes too only if asked), then forget the VM."""
        name, where = vm.name, ""
        if vm.host is not None:
            hv = self.hypervisor(vm.host)
            if hv.exists(vm.uuid):
                if hv.state(vm.uuid).active:
                    hv.destroy(vm.uuid)
                hv.undefine(vm.uuid, remove_storage=bool(args.get("delete_volumes")))
                where = f" from {vm.host.hostname}"
        if args.get("delete_volumes"):
            StorageService(self.ctx, connections=self.pool).delete_volumes_of_vm(vm)
        remove_system(self.dbsession, vm)  # its Cobbler system, if it was installed by one
        record(
            self.dbsession,
            None,
            "vm.deleted",
            "vm",
            vm.id,
            pool_id=vm.pool_id,
            before={"name": name, "uuid": vm.uuid},
        )
        NetworkService(self.ctx).release_vm_addresses(vm)
        self.dbsession.delete(vm)
        self.dbsession.flush()
        volumes = " and its volumes" if args.get("delete_volumes") else ""
        return f"{name}{volumes} deleted{where}"

    def do_migrate(self, vm: Vm, args: dict[str, Any]) -> str:
        """Live-migrate after libvirt's pre-checks (arch, CPU, memory, storage); progress
        from the job statistics; a failure leaves the VM running where it was."""
        source = self._host(vm, {"host": args.get("source") or vm.host_id})
        destination = self._host(vm, {"host": args["host"]})
        if destination.id == source.id:
            raise Conflict(f"{vm.name} already runs on {destination.hostname}")
        src, dst = self.hypervisor(source), self.hypervisor(destination)
        if dst.exists(vm.uuid) and dst.state(vm.uuid).active and not src.exists(vm.uuid):
            vm.host_id = destination.id
            self._observe(vm, dst, vm.state)
            return f"{vm.name} already runs on {destination.hostname}"
        self.progress(1, "pre-checks")
        checks = src.migration_checks(vm.uuid, dst)
        summary = "; ".join(f"{c.name}: {'ok' if c.ok else 'FAILED'} ({c.message})" for c in checks)
        failed = [c for c in checks if not c.ok]
        if failed:
            raise MigrationFailed(
                "pre-checks failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed)
            )
        self.progress(5, "pre-checks passed: " + summary)

        def on_progress(sample: MigrationProgress) -> None:
            self.progress(5 + int(sample.percent * 0.94), f"{sample.percent:.0f}% sent")

        result = src.migrate(
            vm.uuid,
            destination.libvirt_uri,
            peer_to_peer=False,
            migration_address=getattr(destination, "management_address", None) or None,
            on_progress=on_progress,
        )
        vm.host_id = destination.id
        self.dbsession.flush()
        self._observe(vm, dst, VmState.MIGRATING.value)
        downtime = f", downtime {result.downtime_ms} ms" if result.downtime_ms else ""
        return (
            f"{vm.name} migrated from {source.hostname} to {destination.hostname} in"
            f" {result.seconds:.1f} s{downtime}"
        )


def run_vm_task(task: Task, dbsession: Session) -> str:
    """The handler of every ``vm.*`` task kind (registered below)."""

    def report(percent: int, message: str) -> None:
        progress(task, percent, message)

    options = SimpleNamespace(extra=dict((task.args or {}).get("libvirt") or {}))
    return VmWork(dbsession, options, progress=report).run(task)


#: how long one attempt of each action may take (seconds)
_TIMEOUTS = {"create": 120, "delete": 300, "save": 900, "restore": 900, "migrate": 3600}

for _action in ("create", *ACTIONS):
    register(
        f"vm.{_action}",
        run_vm_task,
        timeout=_TIMEOUTS.get(_action, 180),
        title=f"VM {_action}",
    )
