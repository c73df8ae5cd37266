"""Replication: whether a master storage server and its secondary agree."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...models import StorageServer
from .input import size_label


@dataclass
class ReplicationPair:
    """A master and the secondary it replicates to, and how far they agree."""

    master: StorageServer
    secondary: StorageServer
    master_reachable: bool | None
    secondary_reachable: bool | None
    master_bytes: int | None
    secondary_bytes: int | None
    only_on_master: list[str] = field(default_factory=list)
    only_on_secondary: list[str] = field(default_factory=list)
    size_differs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``in sync``, ``drift`` or ``unknown`` (never checked or not refreshed)."""
        if self.warnings:
            return "drift"
        if self.master_reachable is None or self.secondary_reachable is None:
            return "unknown"
        return "in sync"


def _reachable(server: StorageServer) -> bool | None:
    if server.checked_at is None:
        return None
    return not server.last_error


def _volume_sizes(server: StorageServer) -> dict[str, int]:
    return {
        volume.name: volume.capacity_bytes
        for pool in server.storage_pools
        for volume in pool.volumes
    }


def _server_bytes(server: StorageServer) -> int | None:
    """What the server's pools hold as libvirt last reported (else its stated size)."""
    sizes = [p.capacity_bytes for p in server.storage_pools if p.capacity_bytes is not None]
    return sum(sizes) if sizes else server.capacity_bytes


def compare_pair(master: StorageServer, secondary: StorageServer) -> ReplicationPair:
    """Whether a master and its secondary are reachable and agree on size and volumes."""
    pair = ReplicationPair(
        master,
        secondary,
        _reachable(master),
        _reachable(secondary),
        _server_bytes(master),
        _server_bytes(secondary),
    )
    for server, reachable in (
        (master, pair.master_reachable),
        (secondary, pair.secondary_reachable),
    ):
        if reachable is False:
            pair.warnings.append(f"{server.hostname} is unreachable: {server.last_error}")
    if (
        master.capacity_bytes is not None
        and secondary.capacity_bytes is not None
        and master.capacity_bytes != secondary.capacity_bytes
    ):
        pair.warnings.append(
            f"the servers differ in size: {size_label(master.capacity_bytes)} on"
            f" {master.hostname}, {size_label(secondary.capacity_bytes)} on {secondary.hostname}"
        )
    if (
        pair.master_bytes is not None
        and pair.secondary_bytes is not None
        and pair.master_bytes > pair.secondary_bytes
    ):
        pair.warnings.append(
            f"{secondary.hostname} has {size_label(pair.secondary_bytes)} in its pools, less"
            f" than the {size_label(pair.master_bytes)} of {master.hostname}: the mirror"
            " cannot hold a full copy"
        )
    ours, theirs = _volume_sizes(master), _volume_sizes(secondary)
    pair.only_on_master = sorted(set(ours) - set(theirs))
    pair.only_on_secondary = sorted(set(theirs) - set(ours))
    pair.size_differs = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    if pair.only_on_master:
        pair.warnings.append(
            f"volumes not on {secondary.hostname}: " + ", ".join(pair.only_on_master[:10])
        )
    if pair.only_on_secondary:
        pair.warnings.append(
            f"volumes not on {master.hostname}: " + ", ".join(pair.only_on_secondary[:10])
        )
    if pair.size_differs:
        pair.warnings.append("volumes of different sizes: " + ", ".join(pair.size_differs[:10]))
    return pair
