"""Reading a host's facts and its domains from libvirt."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import libvirt

from .connection import VirtError

#: libvirt's domain states, as FedoraCloud's VM states
DOMAIN_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "unknown",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting_down",
    libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
    libvirt.VIR_DOMAIN_CRASHED: "failed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "paused",
}


@dataclass(frozen=True)
class CpuFact:
    """One logical CPU."""

    index: int
    socket: int
    core: int
    thread: int
    vendor: str
    model: str
    speed_mhz: int
    flags: str


@dataclass(frozen=True)
class NicFact:
    """One host interface."""

    name: str
    mac: str
    ip_address: str | None
    prefix_length: int | None


@dataclass(frozen=True)
class DomainFact:
    """One domain defined on the host."""

    name: str
    uuid: str
    state: str
    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class HostFacts:
    """What libvirt says about a host."""

    arch: str
    hypervisor: str
    hypervisor_version: str
    libvirt_version: str
    memory_mib: int
    cpu_mhz: int
    cpus: list[CpuFact] = field(default_factory=list)
    nics: list[NicFact] = field(default_factory=list)
    domains: list[DomainFact] = field(default_factory=list)
    uuid: str | None = None


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"


def _xml(text: str, what: str) -> ET.Element:
    """libvirt's XML, or VirtError saying which document was not XML."""
    try:
        return ET.fromstring(text)  # noqa: S314 - libvirt's own XML
    except ET.ParseError as exc:
        raise VirtError(f"libvirt's {what} is not XML: {exc}") from None


def _prefix(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 4 else None


def _nic(iface: libvirt.virInterface) -> NicFact:
    root = _xml(iface.XMLDesc(0), f"description of interface {iface.name()!r}")
    ip = root.find("./protocol[@family='ipv4']/ip")
    prefix = (ip.get("prefix") or "") if ip is not None else ""
    return NicFact(
        name=iface.name(),
        mac=iface.MACString().lower(),
        ip_address=ip.get("address") if ip is not None else None,
        prefix_length=_prefix(prefix),
    )


def read_domains(conn: libvirt.virConnect) -> list[DomainFact]:
    """Every domain defined or running on the host, with its state, sorted by name (one
    undefined while the list is read is left out)."""
    found = []
    for dom in conn.listAllDomains(0):
        try:
            state, max_mem_kib, _mem, vcpus, _cpu_time = dom.info()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue  # undefined since the list was made
            raise
        found.append(
            DomainFact(
                dom.name(),
                dom.UUIDString(),
                DOMAIN_STATES.get(state, "unknown"),
                vcpus,
                max_mem_kib // 1024,
            )
        )
    return sorted(found, key=lambda d: d.name)


def read_host_facts(conn: libvirt.virConnect) -> HostFacts:
    """Facts of the host behind a connection: CPUs, memory, NICs, versions, domains."""
    arch, memory_mib, _active, mhz, nodes, sockets, cores, threads = conn.getInfo()
    caps = _xml(conn.getCapabilities(), "capabilities")
    host_uuid = caps.findtext("./host/uuid")
    vendor = caps.findtext("./host/cpu/vendor") or ""
    model = caps.findtext("./host/cpu/model") or arch
    flags = " ".join(
        sorted(f.get("name", "") for f in caps.findall("./host/cpu/feature") if f.get("name"))
    )
    cpus = []
    index = 0
    for _node in range(max(nodes, 1)):
        for socket in range(sockets):
            for core in range(cores):
                for thread in range(threads):
                    cpus.append(CpuFact(index, socket, core, thread, vendor, model, mhz, flags))
                    index += 1
    # loopback is no NIC (and its all-zero MAC is on every host)
    nics = [n for n in map(_nic, conn.listAllInterfaces(0)) if n.mac != "00:00:00:00:00:00"]
    return HostFacts(
        arch=arch,
        hypervisor=conn.getType().lower(),
        hypervisor_version=_version(conn.getVersion()),
        libvirt_version=_version(conn.getLibVersion()),
        memory_mib=memory_mib,
        cpu_mhz=mhz,
        cpus=cpus,
        nics=sorted(nics, key=lambda n: n.name),
        domains=read_domains(conn),
        uuid=host_uuid,
    )


def facts_to_json(uuid: str, hostname: str, facts: HostFacts) -> dict[str, Any]:
    """The facts as a node sends them (the inverse of ``parse_facts``)."""
    return {
        "uuid": uuid,
        "hostname": hostname,
        "arch": facts.arch,
        "hypervisor": facts.hypervisor,
        "hypervisor_version": facts.hypervisor_version,
        "libvirt_version": facts.libvirt_version,
        "memory_mib": facts.memory_mib,
        "cpu_mhz": facts.cpu_mhz,
        "cpus": [
            {
                "index": c.index,
                "socket": c.socket,
                "core": c.core,
                "thread": c.thread,
                "vendor": c.vendor,
                "model": c.model,
                "speed_mhz": c.speed_mhz,
                "flags": c.flags,
            }
            for c in facts.cpus
        ],
        "nics": [
            {
                "name": n.name,
                "mac": n.mac,
                "ip_address": n.ip_address,
                "prefix_length": n.prefix_length,
            }
            for n in facts.nics
        ],
    }
