"""The FAS2 login backend: passwords and group memberships from the Fedora Account System.

Everything goes through python-fedora's ``AccountSystem`` (``fedora.client.fas2``):

* the password is checked with ``verify_password`` (a POST to ``/home`` with the person's
  ``user_name``/``password`` and ``login=Login``; FAS answers 403 when they are wrong);
* memberships are read with FedoraCloud's service account (``fedoracloud.fas.username``)
  from ``/json/person_by_username`` — the ``group_roles`` of the person, each with its
  ``role_type`` (user, sponsor, administrator) and ``role_status`` (approved,
  unapproved);
* a group's members come from ``/group/dump/<group>`` (approved members with their role
  type, name and email) and ``/json/group_by_name`` (whose ``unapproved_roles`` name the
  applicants by person id, looked up with ``/json/person_by_id``).

The service account's session lives in memory only (``cache_session=False``, and the
``~/.fedora`` session file python-fedora would otherwise read is never consulted).
Every failure to talk to FAS — refused connection, timeout, HTTP error, an ``exc``
answer, an answer that is not FAS's JSON — becomes ``BackendUnavailable`` with a short
message that is safe to show; the details go to this module's log.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlparse

import requests
from fedora.client import AppError, AuthError, FedoraClientError, ServerError
from fedora.client.fas2 import AccountSystem

from ..settings import ConfigError, Settings
from . import BackendUnavailable, Membership, Person
from .htpasswd import PASSWORD_MAX, InvalidUsername, check_username

log = logging.getLogger(__name__)

#: FAS group names as FedoraCloud accepts them (FAS's own are a subset)
GROUP_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_GROUP = re.compile(GROUP_PATTERN)
_USERNAME_CHARS = re.compile(r"[a-z0-9_.-]+")

DEFAULT_TIMEOUT = 10.0
DEFAULT_CACHE_TTL = 300.0
#: applicants (unapproved members) of a group looked up one by one, at most
MAX_APPLICANT_LOOKUPS = 50
#: groups whose member lists are kept at once
MAX_CACHED_GROUPS = 64

_ROLE_TYPES = ("user", "sponsor", "administrator")
#: FAS account statuses that may log in (others: expired, admin_disabled, spamcheck_*)
ACTIVE_STATUSES = ("active", "bot")


class _NotFas(ValueError):
    """FAS answered, but not with what a FAS server answers."""


class _MemoryOnlyAccountSystem(AccountSystem):
    """python-fedora's AccountSystem whose session id lives in memory only.

    ``BaseClient`` reads ``~/.fedora/fedora_session`` (a pickle) whenever it has no
    session id yet, even with ``cache_session=False``; a web server must not pick up
    whatever session a command-line user of the same account left there.
    """

    @property
    def session_id(self) -> str:
        """The FAS session (``tg-visit`` cookie) of the service account, if any."""
        return str(getattr(self, "_session_id", None) or "")

    @session_id.setter
    def session_id(self, session_id: str) -> None:
        self._session_id = session_id

    @session_id.deleter
    def session_id(self) -> None:
        self._session_id = ""


def _quiet(client: Any) -> None:
    """Detach the stderr handlers python-fedora adds to its loggers for every client.

    Its messages still reach the application's logging through the usual propagation.
    """
    for part in (client, getattr(client, "proxy", None)):
        handler = getattr(part, "_log_handler", None)
        if part is not None and handler is not None:
            part.log.removeHandler(handler)


def _acceptable_username(username: Any) -> bool:
    """True for a username FedoraCloud accepts (so it may be sent to FAS)."""
    # check_username's pattern ends in '$', which lets a trailing newline through
    if not isinstance(username, str) or not _USERNAME_CHARS.fullmatch(username):
        return False
    try:
        check_username(username)
    except InvalidUsername:
        return False
    return True


def _acceptable_group(group: Any) -> bool:
    """True for a group name that may be sent to FAS."""
    return isinstance(group, str) and bool(_GROUP.fullmatch(group))


def _text(value: Any) -> str:
    """A FAS string field ('' for the None that privacy filtering leaves)."""
    return value if isinstance(value, str) else ""


def _membership(group: Any, role: Any) -> Membership:
    """A Membership from a FAS PersonRoles record (role_type, role_status)."""
    if not isinstance(group, str) or not isinstance(role, Mapping):
        raise _NotFas(f"a role that is not a record: {role!r:.80}")
    role_type = role.get("role_type")
    if role_type not in _ROLE_TYPES:
        raise _NotFas(f"unknown role_type {role_type!r:.40}")
    # FAS counts every status but 'approved' as not approved (UnApprovedRoles)
    status = "approved" if role.get("role_status") == "approved" else "unapproved"
    return Membership(group=group, role_type=role_type, status=status)


def memberships_of(person: Mapping[str, Any]) -> tuple[Membership, ...]:
    """The memberships in a FAS person record (``/json/person_by_username``).

    FAS 0.8 gives ``group_roles`` (group name → role); older servers give ``roles``
    (with group ids) and ``memberships`` (the groups), or only the approved and
    unapproved group lists.
    """
    found: dict[str, Membership] = {}
    group_roles = person.get("group_roles")
    roles = person.get("roles")
    if group_roles:
        if not isinstance(group_roles, Mapping):
            raise _NotFas("group_roles is not a mapping")
        for group, role in group_roles.items():
            found[group] = _membership(group, role)
    elif roles:
        names: dict[Any, str] = {}
        for key in ("memberships", "approved_memberships", "unapproved_memberships"):
            for group in person.get(key) or ():
                names[group["id"]] = group["name"]
        for role in roles:
            group = names.get(role["group_id"])
            if group is None:
                raise _NotFas(f"a role in group id {role['group_id']!r:.20} without its group")
            found[group] = _membership(group, role)
    else:
        for key, status in (("approved_memberships", "approved"), ("unapproved_memberships", "")):
            for group in person.get(key) or ():
                role = {"role_type": "user", "role_status": status}
                found[group["name"]] = _membership(group["name"], role)
    return tuple(found[name] for name in sorted(found))


class FasBackend:
    """Checks passwords against FAS2 and reads group memberships from it."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        """Set up the service-account client; no request is made yet.

        ``timeout`` (seconds) bounds every request to FAS; ``cache_ttl`` is how long a
        group's member list is reused by ``group_members``.
        """
        if not settings.fas_base_url.startswith(("https://", "http://")):
            raise ConfigError("setting fedoracloud.fas.base_url: required with fas (an URL)")
        for key, value in (
            ("username", settings.fas_username),
            ("password", settings.fas_password),
        ):
            if not value:
                raise ConfigError(
                    f"setting fedoracloud.fas.{key}: required with fas"
                    " (the service account that reads group memberships)"
                )
        self.base_url = settings.fas_base_url
        self.host = urlparse(settings.fas_base_url).netloc
        self.timeout = float(timeout)
        self.cache_ttl = float(cache_ttl)
        self._client = _MemoryOnlyAccountSystem(
            base_url=settings.fas_base_url,
            username=settings.fas_username,
            password=settings.fas_password,
            cache_session=False,
            useragent="FedoraCloud (python-fedora AccountSystem)",
            timeout=self.timeout,
            retries=0,
        )
        # the thread-safe proxy that verify_password uses is made without the timeout
        self._client.proxy.timeout = self.timeout
        _quiet(self._client)
        self._lock = threading.Lock()
        self._members: dict[str, tuple[float, tuple[Person, ...]]] = {}

    # -- the PasswordBackend interface -------------------------------------------------

    def authenticate(self, username: str, password: str) -> Person | None:
        """The person, with their memberships, if FAS accepts the password; else None.

        Raises BackendUnavailable if FAS cannot be reached or answers nonsense.
        """
        if not _acceptable_username(username):
            return None
        if not isinstance(password, str) or not password or len(password) > PASSWORD_MAX:
            return None
        with self._fas("checking a password"):
            accepted = bool(self._client.verify_password(username, password))
        if not accepted:
            log.info("FAS refused the password of %s", username)
            return None
        return self._person(username)

    def memberships(self, username: str) -> tuple[Membership, ...] | None:
        """Re-read someone's memberships with the service account; None if FAS has no
        such person (or the account is disabled)."""
        if not _acceptable_username(username):
            return None
        person = self._person(username)
        return None if person is None else person.memberships

    def group_members(self, group: str) -> list[Person]:
        """Everyone in a group with their membership of it (approved members, then
        applicants), cached for ``cache_ttl`` seconds; [] for a group FAS does not have."""
        if not _acceptable_group(group):
            return []
        now = time.monotonic()
        with self._lock:
            cached = self._members.get(group)
            if cached is not None and cached[0] > now:
                return list(cached[1])
        members = self._read_group(group)
        with self._lock:
            if len(self._members) >= MAX_CACHED_GROUPS:
                self._members.clear()
            self._members[group] = (time.monotonic() + self.cache_ttl, members)
        return list(members)

    def clear_cache(self) -> None:
        """Forget the cached member lists (the next group_members asks FAS again)."""
        with self._lock:
            self._members.clear()

    # -- reading FAS -------------------------------------------------------------------

    def _person(self, username: str) -> Person | None:
        """Person with memberships from /json/person_by_username; None if FAS has no
        such person or the account is disabled."""
        with self._fas(f"reading the account {username}"):
            record = self._client.person_by_username(username)
            if not record:
                return None
            status = record.get("status")
            if status is not None and status not in ACTIVE_STATUSES:
                log.info("FAS account %s is %s", username, status)
                return None
            if record.get("username") != username:
                raise _NotFas("person_by_username answered with someone else")
            return Person(
                username=username,
                display_name=_text(record.get("human_name")),
                email=_text(record.get("email")),
                memberships=memberships_of(record),
            )

    def _read_group(self, group: str) -> tuple[Person, ...]:
        """A group's approved members and applicants, read from FAS."""
        with self._fas(f"reading the members of {group}"):
            try:
                record = self._client.group_by_name(group)
            except AppError as exc:
                # python-fedora's way of saying {"success": false}: no such group
                if exc.name == "FASError" and "unable to retrieve group" in str(exc.message):
                    return ()
                raise
            # AccountSystem.group_members() reads this same answer but drops the names
            dump = self._client.send_request(f"/group/dump/{quote(group)}", auth=True)
            members: dict[str, Person] = {}
            for row in dump["people"]:
                username, email, human_name, role_type = row[0], row[1], row[2], row[3]
                if not _acceptable_username(username):
                    continue
                role = {"role_type": role_type, "role_status": "approved"}
                members[username] = Person(
                    username=username,
                    display_name=_text(human_name),
                    email=_text(email),
                    memberships=(_membership(group, role),),
                )
            applicants = [
                applied
                for applied in record.get("unapproved_roles") or ()
                if isinstance(applied, Mapping)
            ]
            if len(applicants) > MAX_APPLICANT_LOOKUPS:
                log.warning(
                    "FAS group %s has %d applicants; listing the first %d",
                    group,
                    len(applicants),
                    MAX_APPLICANT_LOOKUPS,
                )
            for applied in applicants[:MAX_APPLICANT_LOOKUPS]:
                person = self._client.person_by_id(int(applied["person_id"]))
                username = person.get("username") if person else None
                if not isinstance(username, str) or not _acceptable_username(username):
                    continue
                if username in members:
                    continue
                members[username] = Person(
                    username=username,
                    display_name=_text(person.get("human_name")),
                    email=_text(person.get("email")),
                    memberships=(_membership(group, applied),),
                )
            return tuple(members.values())

    @contextmanager
    def _fas(self, doing: str) -> Iterator[None]:
        """Turn whatever python-fedora or requests raise into BackendUnavailable."""
        try:
            yield
        except AuthError as exc:
            log.error("FAS refused the service account while %s: %s", doing, exc)
            reason = "it refused FedoraCloud's service account"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
        except ServerError as exc:
            log.warning("FAS failed while %s: %r", doing, exc)
            if exc.code == -1:
                reason = f"no answer within {self.timeout:g} seconds"
            elif isinstance(exc.code, int) and exc.code >= 400:
                reason = f"it answered HTTP {exc.code}"
            else:
                reason = "its answer was not FAS's JSON"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
        except AppError as exc:
            log.warning("FAS reported an error while %s: %r", doing, exc)
            reason = f"it reported an error ({str(exc.name)[:60]})"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
        except requests.Timeout as exc:
            log.warning("FAS timed out while %s: %s", doing, exc)
            reason = f"no answer within {self.timeout:g} seconds"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
        except (requests.ConnectionError, ConnectionError) as exc:
            log.warning("no connection to FAS while %s: %s", doing, exc)
            reason = f"no connection to {self.host}"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
        except (requests.RequestException, OSError, FedoraClientError) as exc:
            log.warning("talking to FAS failed while %s: %r", doing, exc)
            reason = f"{type(exc).__name__} talking to {self.host}"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
        except (_NotFas, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            log.warning("FAS answered nonsense while %s: %r", doing, exc)
            reason = "it answered something that is not a FAS answer"
            raise BackendUnavailable(f"FAS could not be reached: {reason}") from exc
