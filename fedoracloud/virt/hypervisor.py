"""The Hypervisor: the one interface services use to drive a host's libvirt.

``Hypervisor(uri)`` wraps one host (``qemu+tls://HOST/system``, ``qemu+ssh://``,
``qemu+tcp://``, ``qemu:///system``, ``qemu+unix:///system?socket=…``, ``test:///….xml``).
It borrows the host's shared connection from a :class:`ConnectionPool`, so making one is
free; domains are named by UUID.  Every libvirt failure becomes a :class:`VirtError`
subclass whose message names the host and the domain:

- :class:`HostUnreachable` — the host did not answer (retry later; the VM is ``unknown``);
- :class:`NoSuchDomain` — no domain with that UUID on this host;
- :class:`InvalidDomainSpec` — the VM description is wrong (nothing was defined);
- :class:`MigrationFailed` — a migration did not complete (the VM still runs on the source);
- :class:`VirtError` — anything else libvirt refused (e.g. "domain is not running").
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt

from .connection import (
    ConnectionPool,
    HostUnreachable,
    VirtError,
    default_pool,
    is_connection_error,
)
from .domain import (
    DomainSpec,
    InvalidDomainSpec,
    build_domain_xml,
    parse_domain_xml,
    validate_address,
    validate_name,
    validate_path,
)
from .facts import DOMAIN_STATES, DomainFact, HostFacts, read_domains, read_host_facts

T = TypeVar("T")

#: the port range QEMU's incoming migrations use on nodes (the seed's firewall opens it)
MIGRATION_PORTS = range(49152, 49217)


class NoSuchDomain(VirtError):
    """The host has no domain with that UUID."""


class MigrationFailed(VirtError):
    """A live migration did not complete; the message says where and why."""


@dataclass(frozen=True)
class DomainState:
    """A domain's state as FedoraCloud names it, with libvirt's reason."""

    state: str
    reason: str
    active: bool
    persistent: bool


@dataclass(frozen=True)
class MigrationProgress:
    """One sample of a running migration (from libvirt's job statistics)."""

    elapsed_ms: int
    data_total: int
    data_processed: int
    data_remaining: int
    memory_bps: int

    @property
    def percent(self) -> float:
        """Share of the data sent so far (0 to 100; 0 until libvirt knows the total)."""
        if self.data_total <= 0:
            return 0.0
        return min(100.0, 100.0 * self.data_processed / self.data_total)


@dataclass(frozen=True)
class MigrationResult:
    """What a finished migration cost."""

    seconds: float
    downtime_ms: int | None
    data_bytes: int | None


@dataclass(frozen=True)
class Check:
    """One migration pre-check, shown to the user: its name, outcome and why."""

    name: str
    ok: bool
    message: str


_CPU_COMPARE = {
    libvirt.VIR_CPU_COMPARE_INCOMPATIBLE: "incompatible",
    libvirt.VIR_CPU_COMPARE_IDENTICAL: "identical",
    libvirt.VIR_CPU_COMPARE_SUPERSET: "superset",
}


def _reason(state: int, reason: int) -> str:
    """libvirt's reason code for a state, as a word (booted, user, destroyed …)."""
    names = {
        libvirt.VIR_DOMAIN_RUNNING: {
            libvirt.VIR_DOMAIN_RUNNING_BOOTED: "booted",
            libvirt.VIR_DOMAIN_RUNNING_MIGRATED: "migrated",
            libvirt.VIR_DOMAIN_RUNNING_RESTORED: "restored",
            libvirt.VIR_DOMAIN_RUNNING_UNPAUSED: "unpaused",
            libvirt.VIR_DOMAIN_RUNNING_FROM_SNAPSHOT: "from snapshot",
        },
        libvirt.VIR_DOMAIN_PAUSED: {
            libvirt.VIR_DOMAIN_PAUSED_USER: "user",
            libvirt.VIR_DOMAIN_PAUSED_MIGRATION: "migration",
            libvirt.VIR_DOMAIN_PAUSED_SAVE: "save",
            libvirt.VIR_DOMAIN_PAUSED_IOERROR: "I/O error",
            libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN: "shutting down",
        },
        libvirt.VIR_DOMAIN_SHUTOFF: {
            libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shutdown",
            libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
            libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed",
            libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "migrated",
            libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "saved",
            libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "failed",
            libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "from snapshot",
        },
    }
    return names.get(state, {}).get(reason, "unknown" if reason else "")


class Hypervisor:
    """One host's libvirt, as the services see it.  Thread-safe; cheap to make."""

    def __init__(self, uri: str, pool: ConnectionPool | None = None) -> None:
        self.pool = pool if pool is not None else default_pool()
        self.uri = uri
        self.pool._entry(uri)  # validates the URI now (raises VirtError)

    def __repr__(self) -> str:
        return f"<Hypervisor {self.uri}>"

    # -- plumbing -------------------------------------------------------------------------

    def connection(self) -> libvirt.virConnect:
        """The host's live shared connection (raises HostUnreachable)."""
        return self.pool.get(self.uri)

    def _call(self, what: str, fn: Callable[[libvirt.virConnect], T], retry: bool = True) -> T:
        """Run ``fn(conn)``; a dead connection is re-opened once for calls that are safe to
        repeat (reads), and every libvirt error becomes a VirtError naming ``what``."""
        for attempt in (1, 2):
            conn = self.connection()
            try:
                return fn(conn)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    raise NoSuchDomain(f"{self.uri}: {what}: no such domain") from exc
                if is_connection_error(exc) and not _alive(conn):
                    self.pool.drop(self.uri)
                    if retry and attempt == 1:
                        continue
                    raise HostUnreachable(
                        f"{self.uri}: {what}: lost the connection ({exc.get_error_message()})"
                    ) from exc
                raise VirtError(f"{self.uri}: {what}: {exc.get_error_message()}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _domain(self, conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain:
        return conn.lookupByUUIDString(uuid)

    # -- host -----------------------------------------------------------------------------

    def facts(self) -> HostFacts:
        """The host's facts: arch, CPUs, memory, NICs, versions, UUID and its domains."""
        return self._call("reading facts", read_host_facts)

    def domains(self) -> list[DomainFact]:
        """Every domain defined or running on the host, with its state (sorted by name)."""
        return self._call("listing domains", read_domains)

    def free_memory_mib(self) -> int:
        """Memory the host has free now, in MiB.

        The test driver reports no free memory for a host file without NUMA cells; for a
        fake host it is its memory less what its running domains were given."""

        def read(conn: libvirt.virConnect) -> int:
            if not self.uri.startswith("test:"):
                return int(conn.getFreeMemory()) // 1024**2
            used_kib = sum(
                d.info()[1] for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            )
            return max(0, int(conn.getInfo()[1]) - used_kib // 1024)

        return self._call("reading free memory", read)

    def host_uuid(self) -> str | None:
        """The host UUID libvirt reports (None on the test driver)."""
        caps = self._call("reading capabilities", lambda c: c.getCapabilities())
        return ET.fromstring(caps).findtext("./host/uuid")  # noqa: S314

    def host_cpu_xml(self) -> str:
        """The host CPU's ``<cpu>`` element from libvirt's capabilities."""
        caps = self._call("reading capabilities", lambda c: c.getCapabilities())
        cpu = ET.fromstring(caps).find("./host/cpu")  # noqa: S314
        if cpu is None:
            raise VirtError(f"{self.uri}: libvirt reports no host CPU")
        return ET.tostring(cpu, encoding="unicode")

    def compare_cpu(self, cpu_xml: str) -> str:
        """How a CPU (another host's ``<cpu>``) compares with this host's:
        ``identical``, ``superset`` (this host has more) or ``incompatible``."""
        result = self._call("comparing CPUs", lambda c: c.compareCPU(cpu_xml, 0))
        return _CPU_COMPARE.get(result, "incompatible")

    # -- domains --------------------------------------------------------------------------

    def define(self, spec: DomainSpec | str) -> DomainFact:
        """Define (or redefine) a domain from a spec or from XML; returns it.

        A spec is validated first, XML is checked to be domain XML with a valid name
        (InvalidDomainSpec, nothing defined)."""
        xml = build_domain_xml(spec) if isinstance(spec, DomainSpec) else spec
        if not isinstance(spec, DomainSpec):
            # refuses what is not domain XML, or names a domain badly, before libvirt sees it
            validate_name(parse_domain_xml(xml).name)

        def run(conn: libvirt.virConnect) -> DomainFact:
            dom = conn.defineXML(xml)
            state, max_mem_kib, _mem, vcpus, _cpu = dom.info()
            return DomainFact(
                dom.name(),
                dom.UUIDString(),
                DOMAIN_STATES.get(state, "unknown"),
                vcpus,
                max_mem_kib // 1024,
            )

        return self._call("defining a domain", run, retry=False)

    def _act(self, uuid: str, what: str, fn: Callable[[libvirt.virDomain], Any]) -> None:
        self._call(f"{what} {uuid}", lambda c: fn(self._domain(c, uuid)), retry=False)

    def start(self, uuid: str) -> None:
        """Start (boot) a defined domain."""
        self._act(uuid, "starting", lambda d: d.create())

    def shutdown(self, uuid: str) -> None:
        """Ask the guest to shut down (ACPI power button); it may ignore it."""
        self._act(uuid, "shutting down", lambda d: d.shutdown())

    def destroy(self, uuid: str) -> None:
        """Power the domain off at once (the guest gets no say)."""
        self._act(uuid, "powering off", lambda d: d.destroy())

    def suspend(self, uuid: str) -> None:
        """Pause a running domain (it keeps its memory on the host)."""
        self._act(uuid, "suspending", lambda d: d.suspend())

    def resume(self, uuid: str) -> None:
        """Resume a paused domain."""
        self._act(uuid, "resuming", lambda d: d.resume())

    def reboot(self, uuid: str) -> None:
        """Ask the guest to reboot (ACPI)."""
        self._act(uuid, "rebooting", lambda d: d.reboot(0))

    def save(self, uuid: str, path: str) -> None:
        """Save a running domain's memory to a file on the host and stop it."""
        validate_path(path, "save file")
        self._act(uuid, "saving", lambda d: d.save(path))

    def restore(self, path: str) -> None:
        """Restore a domain from a file written by :meth:`save` (it runs again)."""
        validate_path(path, "save file")
        self._call(f"restoring from {path}", lambda c: c.restore(path), retry=False)

    def undefine(self, uuid: str, remove_storage: bool = False) -> None:
        """Forget a (stopped) domain; with ``remove_storage`` also delete the storage
        volumes its disks use (only volumes libvirt manages in a storage pool)."""

        def run(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, uuid)
            volumes = []
            if remove_storage:
                spec = parse_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                for disk in spec.disks:
                    if disk.kind != "network" and disk.device == "disk":
                        try:
                            volumes.append(conn.storageVolLookupByPath(disk.source))
                        except libvirt.libvirtError:
                            continue  # not a managed volume: left alone
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            for volume in volumes:
                volume.delete(0)

        self._call(f"undefining {uuid}", run, retry=False)

    def xml(self, uuid: str, inactive: bool = False) -> str:
        """The domain's XML as libvirt has it (``inactive``: its persistent config)."""
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return self._call(f"reading XML of {uuid}", lambda c: self._domain(c, uuid).XMLDesc(flags))

    def spec(self, uuid: str) -> DomainSpec:
        """The domain's persistent configuration as a spec."""
        return parse_domain_xml(self.xml(uuid, inactive=True))

    def state(self, uuid: str) -> DomainState:
        """The domain's state now (running, paused, stopped …) and libvirt's reason."""

        def read(conn: libvirt.virConnect) -> DomainState:
            dom = self._domain(conn, uuid)
            state, reason = dom.state()
            return DomainState(
                DOMAIN_STATES.get(state, "unknown"),
                _reason(state, reason),
                bool(dom.isActive()),
                bool(dom.isPersistent()),
            )

        return self._call(f"reading state of {uuid}", read)

    def exists(self, uuid: str) -> bool:
        """Whether the host has a domain with this UUID."""
        try:
            self._call(f"looking up {uuid}", lambda c: self._domain(c, uuid))
        except NoSuchDomain:
            return False
        return True

    # -- migration ------------------------------------------------------------------------

    def migration_checks(self, uuid: str, dest: Hypervisor) -> list[Check]:
        """The pre-checks a migration to ``dest`` must pass, each with its reason:
        not the same host, same architecture, CPU compatible (libvirt's comparison),
        enough free memory, storage reachable (no local disk without a shared volume)."""
        checks = []
        src_uuid, dst_uuid = self.host_uuid(), dest.host_uuid()
        same = self.uri == dest.uri or (src_uuid is not None and src_uuid == dst_uuid)
        checks.append(
            Check(
                "different host",
                not same,
                "the destination is the host the VM runs on" if same else f"to {dest.uri}",
            )
        )
        src_arch = self._call("reading host info", lambda c: c.getInfo()[0])
        dst_arch = dest._call("reading host info", lambda c: c.getInfo()[0])
        checks.append(
            Check(
                "architecture",
                src_arch == dst_arch,
                f"{src_arch} → {dst_arch}",
            )
        )
        try:
            verdict = dest.compare_cpu(self.host_cpu_xml())
            checks.append(
                Check(
                    "CPU compatible",
                    verdict != "incompatible",
                    f"the destination's CPU is {verdict} to the source's",
                )
            )
        except VirtError as exc:
            checks.append(Check("CPU compatible", False, f"cannot compare CPUs: {exc}"))
        spec = self.spec(uuid)
        free = dest.free_memory_mib()
        checks.append(
            Check(
                "free memory",
                free >= spec.memory_mib,
                f"needs {spec.memory_mib} MiB, the destination has {free} MiB free",
            )
        )
        local = []
        for disk in spec.disks:
            if disk.kind == "network":
                continue
            try:
                path = disk.source
                dest._call("looking up a volume", lambda c: c.storageVolLookupByPath(path))  # noqa: B023
            except VirtError:
                local.append(disk.source)
        checks.append(
            Check(
                "shared storage",
                not local,
                "every disk is on storage both hosts reach"
                if not local
                else "the destination does not reach " + ", ".join(local),
            )
        )
        return checks

    def migrate(
        self,
        uuid: str,
        dest_uri: str,
        *,
        peer_to_peer: bool = True,
        migration_address: str | None = None,
        migration_port: int | None = None,
        bandwidth_mib_s: int | None = None,
        on_progress: Callable[[MigrationProgress], None] | None = None,
        poll_interval: float = 0.25,
    ) -> MigrationResult:
        """Live-migrate a running domain to another host; it keeps running there, is
        persistent there and undefined here (LIVE | PERSIST_DEST | UNDEFINE_SOURCE).

        ``peer_to_peer``: this host's libvirtd opens ``dest_uri`` itself (the URI as the
        source host sees it, e.g. ``qemu+tls://dest/system``); otherwise FedoraCloud
        opens ``dest_uri`` and drives both sides.  ``migration_address`` (and a port in
        49152-49216) is where the destination's QEMU listens for the memory stream.
        ``on_progress`` gets a sample every ``poll_interval`` seconds.  Raises
        MigrationFailed with libvirt's reason; the domain then still runs here."""
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        )
        params: dict[str, Any] = {}
        if migration_port is not None and migration_port not in MIGRATION_PORTS:
            raise MigrationFailed(
                f"migration port {migration_port} is outside 49152-49216 (the nodes' firewall)"
            )
        if migration_address is not None:
            address = validate_address(migration_address, "migration address")
            host = f"[{address}]" if ":" in address else address
            params[libvirt.VIR_MIGRATE_PARAM_URI] = (
                f"tcp://{host}:{migration_port}" if migration_port else f"tcp://{host}"
            )
        if bandwidth_mib_s is not None:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib_s)
        dest_conn = None
        if peer_to_peer:
            flags |= libvirt.VIR_MIGRATE_PEER2PEER
        else:
            dest_conn = self.pool.get(dest_uri)
        conn = self.connection()
        try:
            dom = self._domain(conn, uuid)
            name = dom.name()
        except libvirt.libvirtError as exc:
            raise NoSuchDomain(f"{self.uri}: migrating {uuid}: no such domain") from exc
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                if dest_conn is None:
                    dom.migrateToURI3(dest_uri, params, flags)
                else:
                    dom.migrate3(dest_conn, params, flags)
            except libvirt.libvirtError as exc:
                outcome["error"] = exc.get_error_message()
            finally:
                finished.set()

        started = time.monotonic()
        worker = threading.Thread(target=run, name=f"migrate {name}", daemon=True)
        worker.start()
        while not finished.wait(poll_interval):
            if on_progress is None:
                continue
            try:
                stats = dom.jobStats(0)
            except libvirt.libvirtError:
                continue
            if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
                continue
            on_progress(_progress(stats))
        worker.join()
        seconds = time.monotonic() - started
        if "error" in outcome:
            raise MigrationFailed(
                f"migration of {name} from {self.uri} to {dest_uri} failed: {outcome['error']}"
            )
        downtime = data = None
        try:
            target = dest_conn if dest_conn is not None else None
            if target is not None:
                stats = target.lookupByUUIDString(uuid).jobStats(
                    libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
                )
                downtime = stats.get("downtime")
                data = stats.get("data_processed")
        except libvirt.libvirtError:
            pass
        if on_progress is not None:
            on_progress(MigrationProgress(int(seconds * 1000), 1, 1, 0, 0))
        return MigrationResult(seconds, downtime, data)


def _progress(stats: dict[str, Any]) -> MigrationProgress:
    return MigrationProgress(
        elapsed_ms=int(stats.get("time_elapsed", 0)),
        data_total=int(stats.get("data_total", 0)),
        data_processed=int(stats.get("data_processed", 0)),
        data_remaining=int(stats.get("data_remaining", 0)),
        memory_bps=int(stats.get("memory_bps", 0)),
    )


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


@contextmanager
def hypervisor(uri: str, pool: ConnectionPool | None = None) -> Iterator[Hypervisor]:
    """A Hypervisor on a pool of its own, closed afterwards (scripts and one-off reads)."""
    own = pool if pool is not None else ConnectionPool()
    try:
        yield Hypervisor(uri, own)
    finally:
        if pool is None:
            own.close_all()


__all__ = [
    "MIGRATION_PORTS",
    "Check",
    "DomainState",
    "HostUnreachable",
    "Hypervisor",
    "InvalidDomainSpec",
    "MigrationFailed",
    "MigrationProgress",
    "MigrationResult",
    "NoSuchDomain",
    "VirtError",
    "hypervisor",
]
