"""The task queue's settings (``fedoracloud.broker_url``, ``fedoracloud.tasks.*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...settings import ConfigError


@dataclass(frozen=True)
class TaskSettings:
    """The queue's settings (``fedoracloud.broker_url`` and ``fedoracloud.tasks.*``)."""

    #: amqp://… for Celery on RabbitMQ; empty or ``embedded``: ``serve`` runs tasks itself
    broker_url: str = ""
    queue: str = "fedoracloud"
    max_attempts: int = 5
    #: first retry after this many seconds, doubling each time, at most retry_delay_max
    retry_delay: float = 5.0
    retry_delay_max: float = 300.0
    #: a queued task whose message was sent this long ago is sent again by the sweep
    resend_after: int = 60
    sweep_interval: float = 10.0
    #: a worker marks its running tasks alive this often; three misses mean it died
    heartbeat: float = 10.0
    #: how long one attempt may run, unless its kind or its creator says otherwise
    timeout: int = 600
    #: extra modules that register task kinds (besides every fedoracloud.services module)
    modules: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: the web process runs the tasks."""
        return self.broker_url in ("", "embedded")

    @classmethod
    def from_settings(cls, raw: dict[str, Any]) -> TaskSettings:
        """Read the ``fedoracloud.broker_url`` and ``fedoracloud.tasks.*`` settings (raw ini
        values, or ``Settings.extra``); ConfigError names the first bad one."""

        def number(key: str, default: float, minimum: float) -> float:
            value = raw.get(key)
            if value is None or str(value).strip() == "":
                return default
            try:
                result = float(str(value).strip())
            except ValueError:
                raise ConfigError(f"setting {key}: expected a number, got {value!r}") from None
            if not minimum <= result < 10**7:
                raise ConfigError(f"setting {key}: must be at least {minimum}, got {value!r}")
            return result

        broker = str(raw.get("fedoracloud.broker_url", "") or "").strip()
        if broker not in ("", "embedded") and "://" not in broker:
            raise ConfigError(
                "setting fedoracloud.broker_url: expected amqp://USER:PASSWORD@HOST:5672/VHOST,"
                f" or empty for the embedded worker; got {broker[:80]!r}"
            )
        queue = str(raw.get("fedoracloud.tasks.queue", "") or "fedoracloud").strip()
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,200}", queue):
            raise ConfigError(f"setting fedoracloud.tasks.queue: not a queue name: {queue!r}")
        modules = tuple(str(raw.get("fedoracloud.tasks.modules", "") or "").split())
        return cls(
            broker_url=broker,
            queue=queue,
            max_attempts=int(number("fedoracloud.tasks.max_attempts", 5, 1)),
            retry_delay=number("fedoracloud.tasks.retry_delay", 5.0, 0),
            retry_delay_max=number("fedoracloud.tasks.retry_delay_max", 300.0, 0),
            resend_after=int(number("fedoracloud.tasks.resend_after", 60, 1)),
            sweep_interval=number("fedoracloud.tasks.sweep_interval", 10.0, 0.1),
            heartbeat=number("fedoracloud.tasks.heartbeat", 10.0, 0.1),
            timeout=int(number("fedoracloud.tasks.timeout", 600, 1)),
            modules=modules,
        )
