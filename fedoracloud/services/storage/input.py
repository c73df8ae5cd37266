"""Reading storage input: the limits, and the fields of a server, a pool and a volume."""

from __future__ import annotations

import re
from typing import Any

from ...virt.storage import InvalidStorageSpec
from .. import InvalidInput

GIB = 2**30
SERVER_CAPACITY_MAX_GIB = 1024 * 1024  # 1 PiB
VOLUME_SIZE_MAX_GIB = 64 * 1024  # what a VM disk may be (services/vms.py agrees)
#: the initiator name a host logs in with when the pool names none
INITIATOR_PREFIX = "iqn.2009-01.org.fedoraproject.cloud"
#: how long a reachability check waits for a storage server's portal
CHECK_TIMEOUT = 3.0
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)

SERVER_FIELDS = frozenset({"hostname", "address", "role", "replicates_to", "capacity_gib"})
POOL_FIELDS = frozenset(
    {
        "name",
        "kind",
        "server",
        "hardware_pools",
        "portal_address",
        "port",
        "target_iqn",
        "initiator_iqn",
        "lun",
        "source_path",
        "target_path",
        "volume_group",
        "parent_pool",
    }
)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key}: expected text", {"field": key})
    return value.strip()


def _number(body: dict[str, Any], key: str, label: str) -> int | None:
    """A whole number from JSON (int) or a form (digits); None when absent or empty."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{label} must be a whole number", {"field": key})
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value.strip())
    raise InvalidInput(f"{label} must be a whole number", {"field": key})


def _spec_error(exc: InvalidStorageSpec, key: str) -> InvalidInput:
    return InvalidInput(str(exc), {"field": key})


def check_server_hostname(raw: Any) -> str:
    """A storage server's DNS name (lower case, RFC 1123)."""
    name = raw.strip().lower() if isinstance(raw, str) else ""
    if not name or not _HOSTNAME.fullmatch(name):
        raise InvalidInput(
            f"hostname {str(raw)[:64]!r}: a DNS name of letters, digits, '-' and '.'",
            {"field": "hostname"},
        )
    return name


def size_label(size: int | None) -> str:
    """Bytes as people read them (GiB, TiB)."""
    if size is None:
        return "unknown"
    for unit, factor in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def _check_size(size: int | None) -> int:
    if size is None or not 1 <= size <= VOLUME_SIZE_MAX_GIB:
        raise InvalidInput(f"size_gib: 1 to {VOLUME_SIZE_MAX_GIB}", {"field": "size_gib"})
    return size


def _field_of(message: str) -> str:
    for key, words in (
        ("target_iqn", "target IQN"),
        ("initiator_iqn", "initiator IQN"),
        ("portal_address", "portal address"),
        ("portal_address", "NFS server"),
        ("port", "port"),
        ("lun", "LUN"),
        ("volume_group", "volume group"),
    ):
        if words in message:
            return key
    return "storage_pool"
