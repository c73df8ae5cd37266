"""The Cobbler section (``fedoracloud.cobbler.*``): how the app reaches Cobbler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .values import ConfigError

#: the settings this section reads (``fedoracloud.cobbler.*`` in the ini)
URL_KEY = "fedoracloud.cobbler.url"
USERNAME_KEY = "fedoracloud.cobbler.username"
PASSWORD_KEY = "fedoracloud.cobbler.password"  # noqa: S105 - the setting's name
TIMEOUT_KEY = "fedoracloud.cobbler.timeout"
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class CobblerSettings:
    """How to reach Cobbler; an empty URL means no Cobbler is linked (the demo)."""

    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def configured(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> CobblerSettings:
        """Read ``fedoracloud.cobbler.*`` (``env:NAME`` already resolved); ConfigError
        names the first bad setting."""
        url = str(settings.get(URL_KEY, "") or "").strip()
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"setting {URL_KEY}: expected http(s)://HOST/cobbler_api, got {url[:80]!r}"
                )
        username = str(settings.get(USERNAME_KEY, "") or "").strip()
        password = str(settings.get(PASSWORD_KEY, "") or "")
        if url and not username:
            raise ConfigError(f"setting {USERNAME_KEY}: required with {URL_KEY}")
        raw = str(settings.get(TIMEOUT_KEY, "") or "").strip()
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            raise ConfigError(f"setting {TIMEOUT_KEY}: expected seconds, got {raw!r}") from None
        if not 0.1 <= timeout <= 600:
            raise ConfigError(f"setting {TIMEOUT_KEY}: between 0.1 and 600 seconds, got {raw}")
        return cls(url=url, username=username, password=password, timeout=timeout)
