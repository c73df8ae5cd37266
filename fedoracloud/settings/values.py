"""Reading one setting: ``env:NAME`` values, booleans, numbers, lists, host names, paths.

Every reader raises ``ConfigError`` naming the setting; the sections of the settings
package (and the domains that read settings of their own) build on these.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def resolve_env(settings: dict[str, Any]) -> dict[str, Any]:
    """Replace every ``env:NAME`` value by the environment variable NAME."""
    resolved = dict(settings)
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith("env:"):
            name = value[4:].strip()
            if name not in os.environ:
                raise ConfigError(f"setting {key}: environment variable {name} is not set")
            resolved[key] = os.environ[name]
    return resolved


def read_bool(settings: dict[str, Any], key: str, default: bool) -> bool:
    """A true/false setting (1/0, yes/no, on/off too)."""
    value = settings.get(key)
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"setting {key}: expected true or false, got {value!r}")


def read_int(settings: dict[str, Any], key: str, default: int, minimum: int = 0) -> int:
    """A whole number of at least ``minimum``."""
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"setting {key}: expected a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"setting {key}: must be at least {minimum}, got {number}")
    return number


def read_list(settings: dict[str, Any], key: str) -> tuple[str, ...]:
    """Words separated by spaces or commas."""
    return tuple(str(settings.get(key, "") or "").replace(",", " ").split())


HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){HOST_LABEL}(?:\.{HOST_LABEL})*$")
PATH_RE = re.compile(r"^/[A-Za-z0-9._+@/-]*$")
SECRET_RE = re.compile(r"^[!#-\[\]-~]+$")  # printable ASCII without space, " and \
DN_RE = re.compile(r"^[^\x00-\x1f\x7f\"\\]+$")
ENVIRONMENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
URL_RE = re.compile(r"^(https?|wss?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}/?$")
LIBVIRT_URI_RE = re.compile(r"^[a-z][a-z0-9+]*://[A-Za-z0-9.:\[\]@-]*/[A-Za-z0-9._/?=&%-]*$")


def read_text(settings: dict[str, Any], key: str, default: str = "") -> str:
    """A string, stripped; the default when empty."""
    return str(settings.get(key, default) or default).strip()


def read_port(settings: dict[str, Any], key: str, default: int) -> int:
    """A TCP/UDP port, 1 to 65535."""
    number = read_int(settings, key, default, minimum=1)
    if number > 65535:
        raise ConfigError(f"setting {key}: a port is at most 65535, got {number}")
    return number


def read_host(settings: dict[str, Any], key: str, default: str = "") -> str:
    """A host name or an IP address (empty if allowed by an empty default)."""
    value = read_text(settings, key, default)
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not HOSTNAME_RE.fullmatch(value):
        raise ConfigError(f"setting {key}: not a host name or IP address: {value[:80]!r}")
    return value.lower()


def read_matching(
    settings: dict[str, Any], key: str, default: str, pattern: re.Pattern[str], what: str
) -> str:
    """A string that must match ``pattern`` (``what`` describes it in the error)."""
    value = read_text(settings, key, default)
    if value and not pattern.fullmatch(value):
        raise ConfigError(f"setting {key}: {what}, got {value[:80]!r}")
    return value


def checked_url(key: str, url: str) -> str:
    """An ``http://HOST:PORT`` URL without its trailing slash."""
    if not URL_RE.fullmatch(url) or not url.startswith("http://"):
        raise ConfigError(f"setting {key}: expected http://HOST:PORT, got {url[:80]!r}")
    return url.rstrip("/")
