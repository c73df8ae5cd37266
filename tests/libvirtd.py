"""Real libvirt for the tests: session fixtures around ``scripts/libvirt-test-env``.

- ``real_libvirt``: the machine's libvirtd (started as docs/architecture.md §8 says if none answers;
  a running one is left alone), as the URI ``qemu:///system``.
- ``tcg_guest``: the tiny guest (Debian's cloud kernel + a busybox initrd) whose serial
  console prints ``FEDORACLOUD-GUEST-BOOTED boot_id=…`` then a tick every second;
  ``tcg_guest.spec(name, serial_log)`` gives a ``DomainSpec`` (type='qemu', 128 MiB).
- ``migration_pair``: two more libvirtd daemons in their own network + mount + UTS
  namespaces (hostA 10.99.0.1, hostB 10.99.0.2), torn down after the session.
- ``libvirt_domains``: names for test domains (``fc-test-…``); whatever a test leaves
  on a daemon under those names is destroyed and undefined after it.

Tests using them need root (CI runs as root); elsewhere they are skipped with a reason.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import libvirt
import pytest

from fedoracloud.virt.domain import DirectBoot, DomainSpec, SerialSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "libvirt-test-env")
GUEST_DIR = os.environ.get("FEDORACLOUD_TEST_GUEST_DIR", "/var/cache/fedoracloud-test/guest")
SYSTEM_URI = "qemu:///system"
BOOTED = re.compile(r"FEDORACLOUD-GUEST-BOOTED boot_id=([0-9a-f-]+)")
TICK = re.compile(r"FEDORACLOUD-TICK n=(\d+) boot_id=([0-9a-f-]+)")


def _run(*args: str, timeout: float = 300) -> str:
    if os.geteuid() != 0:
        pytest.skip("a real libvirtd needs root (CI runs the suite as root)")
    proc = subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/libvirt-test-env {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


@dataclass(frozen=True)
class Guest:
    """The tiny TCG guest's files, and specs that boot it."""

    kernel: str
    initrd: str

    def spec(self, name: str, serial_log: str | None, **overrides: Any) -> DomainSpec:
        """A diskless TCG guest that boots this kernel and logs its console to a file."""
        values: dict[str, Any] = {
            "name": name,
            "vcpus": 1,
            "memory_mib": 128,
            "virt_type": "qemu",
            "direct_boot": DirectBoot(self.kernel, self.initrd, "console=ttyS0 panic=-1 quiet"),
            "serial": SerialSpec(serial_log),
        }
        values.update(overrides)
        return DomainSpec(**values)


@dataclass(frozen=True)
class MigrationPair:
    """Two namespaced libvirtd daemons: URIs from here (unix sockets) and as each sees
    the other (TCP inside the namespaces), and where each keeps /var/log/libvirt."""

    uri_a: str
    uri_b: str
    tcp_a: str = "qemu+tcp://10.99.0.1/system"
    tcp_b: str = "qemu+tcp://10.99.0.2/system"
    address_a: str = "10.99.0.1"
    address_b: str = "10.99.0.2"
    base: str = ""

    def log_dir(self, host: str) -> str:
        """Host ``A`` or ``B``'s /var/log/libvirt, seen from the test process."""
        return os.path.join(self.base, f"host{host}", "log")


def read_serial(path: str) -> str:
    """The guest's console output so far ('' before the first byte)."""
    try:
        with open(path, "rb") as log:
            return log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_for_serial(path: str, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
    """Wait until the console output matches; fail with the output seen so far."""
    deadline = time.monotonic() + timeout
    while True:
        found = pattern.search(read_serial(path))
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(
                f"no {pattern.pattern!r} on the console in {timeout} s:\n{read_serial(path)}"
            )
        time.sleep(0.1)


def ticks(path: str) -> list[tuple[int, str]]:
    """Every (tick number, boot id) the guest printed."""
    return [(int(n), boot) for n, boot in TICK.findall(read_serial(path))]


@pytest.fixture(scope="session")
def real_libvirt() -> str:
    """The machine's real libvirtd (started if none answers), as a URI."""
    _run("daemon")
    return SYSTEM_URI


@pytest.fixture(scope="session")
def tcg_guest() -> Guest:
    """The tiny TCG guest, built once and cached across runs."""
    _run("guest", GUEST_DIR)
    return Guest(os.path.join(GUEST_DIR, "vmlinuz"), os.path.join(GUEST_DIR, "initrd.img"))


@pytest.fixture(scope="session")
def migration_pair(tmp_path_factory: Any) -> Iterator[MigrationPair]:
    """Two libvirtd daemons in their own namespaces, for live migration."""
    base = str(tmp_path_factory.mktemp("migration"))
    try:
        uris = _run("pair-up", base).split()
        for uri in uris:
            register_cleanup_uri(uri)
        yield MigrationPair(uris[0], uris[1], base=base)
    finally:
        if os.geteuid() == 0:
            subprocess.run([SCRIPT, "pair-down", base], capture_output=True, check=False)


@dataclass
class DomainNames:
    """Hands out unique test domain names and cleans up after the test."""

    made: list[str] = field(default_factory=list)

    def new(self) -> str:
        """A fresh domain name for this test."""
        name = f"fc-test-{secrets.token_hex(4)}"
        self.made.append(name)
        return name


@pytest.fixture
def libvirt_domains() -> Iterator[DomainNames]:
    """Unique domain names; anything left under them on a known daemon is removed after."""
    names = DomainNames()
    yield names
    if not names.made:
        return
    for uri in _cleanup_uris():
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError:
            continue
        try:
            for dom in conn.listAllDomains(0):
                if dom.name() in names.made:
                    if dom.isActive():
                        dom.destroy()
                    if dom.isPersistent():
                        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        except libvirt.libvirtError:
            pass
        finally:
            conn.close()


_extra_cleanup_uris: list[str] = []


def _cleanup_uris() -> list[str]:
    uris = list(_extra_cleanup_uris)
    if os.path.exists("/run/libvirt/libvirt-sock"):
        uris.append(SYSTEM_URI)
    return uris


def register_cleanup_uri(uri: str) -> None:
    """Also clean test domains off this daemon (the migration pair's)."""
    if uri not in _extra_cleanup_uris:
        _extra_cleanup_uris.append(uri)
