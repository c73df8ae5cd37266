"""Throttling guesses: failed logins per account and per address, bad API and enrollment
tokens per address.

Each failure is a row of ``auth_failures`` (so the count holds across the web boxes); past
a limit within the window, the account or address is refused with 429 and ``Retry-After``
until its oldest counted failure leaves the window.  A login that succeeds clears its
account's failures, not its address's.  Reaching a limit is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import transaction
from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from zope.interface import Interface

from ..models import AuthFailure, get_tm_session
from ..models.meta import utcnow
from . import InvalidInput, ServiceError
from .audit import record
from .context import Service, ServiceContext

log = logging.getLogger(__name__)


class Throttled(ServiceError):
    """Too many failed attempts for an account or from an address: wait and try again."""

    status = 429
    code = "throttled"


@dataclass(frozen=True)
class ThrottleSettings:
    """The ``fedoracloud.throttle.*`` settings."""

    #: seconds a failure counts for
    window: int = 900
    #: failed logins to one account within the window before it is refused
    account_failures: int = 10
    #: failures (any scope) from one address within the window before it is refused
    address_failures: int = 50

    @classmethod
    def from_settings(cls, settings: Any) -> ThrottleSettings:
        """From the app's typed Settings (its ``extra``)."""
        extra = settings.extra

        def number(name: str, default: int) -> int:
            key = f"fedoracloud.throttle.{name}"
            raw = str(extra.get(key, "") or "").strip()
            if not raw:
                return default
            if not raw.isdecimal() or int(raw) < 1:
                raise InvalidInput(f"setting {key}: expected a positive whole number")
            return int(raw)

        return cls(
            window=number("window", cls.window),
            account_failures=number("account_failures", cls.account_failures),
            address_failures=number("address_failures", cls.address_failures),
        )


class IThrottleService(Interface):
    """Marker for pyramid-services: ``request.find_service(IThrottleService)``."""


class ThrottleService(Service):
    """Counts failed authentications (from the context's address) and refuses those past
    the limits."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.config = ThrottleSettings.from_settings(ctx.settings)

    def _keys(self, account: str | None) -> dict[str, int]:
        """The keys a failure counts against, each with its limit: the address's failures
        of every scope, the account's failed logins."""
        keys = {f"address:{self.remote_addr or 'unknown'}"[:300]: self.config.address_failures}
        if account:
            keys[f"account:{account.lower()}"[:300]] = self.config.account_failures
        return keys

    def check(self, account: str | None = None) -> None:
        """Throttled if the account (for a login) or the address has too many failures."""
        now = utcnow()
        since = now - timedelta(seconds=self.config.window)
        keys = self._keys(account)
        rows = self.dbsession.execute(
            select(AuthFailure.key, func.count(), func.min(AuthFailure.at))
            .where(AuthFailure.key.in_(keys), AuthFailure.at > since)
            .group_by(AuthFailure.key)
        ).all()
        for key, count, oldest in rows:
            if count >= keys[key]:
                wait = max(1, int((oldest - since).total_seconds()) + 1)
                what = "this account" if key.startswith("account:") else "your address"
                raise Throttled(
                    f"too many failed attempts for {what}; try again in {wait} seconds",
                    {"retry_after": wait},
                )

    def failed(self, scope: str, account: str | None = None) -> None:
        """Count one failure against the address (and the account); audit the failure that
        reaches a limit."""
        now = utcnow()
        since = now - timedelta(seconds=self.config.window)
        keys = self._keys(account)
        self.dbsession.execute(
            delete(AuthFailure).where(AuthFailure.key.in_(keys), AuthFailure.at <= since)
        )
        counts = dict(
            self.dbsession.execute(
                select(AuthFailure.key, func.count())
                .where(AuthFailure.key.in_(keys), AuthFailure.at > since)
                .group_by(AuthFailure.key)
            ).all()
        )
        self.dbsession.add_all(AuthFailure(scope=scope, key=key, at=now) for key in keys)
        for key, limit in keys.items():
            if counts.get(key, 0) + 1 == limit:
                record(
                    self.dbsession,
                    None,
                    f"{scope}.throttled",
                    key.partition(":")[0],
                    None,
                    after={"key": key, "failures": limit, "window": self.config.window},
                    remote_addr=self.remote_addr,
                )
        self.dbsession.flush()

    def succeeded(self, scope: str, account: str) -> None:
        """A login worked: its account's failures are forgotten (the address's are not)."""
        self.dbsession.execute(
            delete(AuthFailure).where(
                AuthFailure.scope == scope, AuthFailure.key == f"account:{account.lower()}"
            )
        )


def count_failure(request: Any, scope: str, account: str | None = None) -> None:
    """Count a failed authentication of this request once its own transaction is over: a
    refusal answered by an exception view (a 401) aborts that transaction, and the count
    must hold all the same.  A test's or script's own session (``app.dbsession``) takes
    the count instead of a transaction of its own."""
    addr = request.client_addr or ""

    def count(request: Any) -> None:
        own = request.environ.get("app.dbsession")
        if own is not None:
            ThrottleService(ServiceContext(own, request.fc_settings, None, addr)).failed(
                scope, account
            )
            return
        manager = transaction.TransactionManager(explicit=True)
        try:
            with manager:
                dbsession = get_tm_session(
                    request.registry["dbsession_factory"], manager, writes=True
                )
                ThrottleService(ServiceContext(dbsession, request.fc_settings, None, addr)).failed(
                    scope, account
                )
        except SQLAlchemyError:
            log.warning("could not count a failed %s from %s", scope, addr, exc_info=True)

    request.add_finished_callback(count)
