"""Opening libvirt connections by URI, with errors turned into one exception type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

_URI = re.compile(
    r"^(?:test:///(?:default|[^\s?#]+\.xml)"
    r"|qemu(?:\+(?:tls|ssh|tcp|unix))?://[A-Za-z0-9.\-\[\]:@]*/(?:system|session)(?:\?[^\s#]*)?)$"
)


class VirtError(Exception):
    """libvirt could not do what was asked; the message says why."""


def check_uri(uri: str) -> str:
    """Return the URI if FedoraCloud accepts it, else raise VirtError."""
    if not _URI.fullmatch(uri or ""):
        raise VirtError(
            f"not a supported libvirt URI: {uri!r} (qemu+tls://HOST/system, qemu+ssh://,"
            " qemu+tcp://, qemu:///system or test:///ABSOLUTE/PATH.xml)"
        )
    return uri


def _silence(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr unless a handler is registered."""


libvirt.registerErrorHandler(_silence, None)


@contextmanager
def connect(uri: str, read_only: bool = False) -> Iterator[libvirt.virConnect]:
    """A connection to one host, closed afterwards."""
    check_uri(uri)
    try:
        conn = libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise VirtError(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
    try:
        yield conn
    except libvirt.libvirtError as exc:
        raise VirtError(f"{uri}: {exc.get_error_message()}") from exc
    finally:
        conn.close()
