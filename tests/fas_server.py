"""A small FAS2 (Fedora Account System 0.8) server for tests, on a real socket.

It answers python-fedora's ``AccountSystem``/``FasProxyClient`` the way FAS does
(fedora-infra/fas ``fas/json_request.py``, ``fas/group.py``, ``fas/model/fasmodel.py``
and TurboGears' identity), with an in-memory set of people and groups the tests control:

* every request is a POST of form fields (GET query strings work too) under the base
  path ``/accounts/``, with ``Accept: application/json``;
* credentials come as ``user_name``/``password``/``login=Login`` form fields (or HTTP
  Basic); wrong ones, a disabled account, or no identity on a method that needs one
  answer **403**; every other answer sets the ``tg-visit`` cookie (TurboGears' visit:
  the one sent if it is live, else a new one), a login binds the visit to the person,
  and the cookie then authenticates alone when it comes with ``_csrf_token`` =
  sha1(visit key) — python-fedora's CSRF token; ``/logout`` ends the visit;
* ``/home`` (what ``verify_password`` posts to), ``/user/view`` → ``{"person": …}``;
  ``/login`` → ``{"user": …, "_csrf_token": …}``; ``/logout`` → ``{}``;
* ``/json/person_by_username`` (``username``), ``/json/person_by_id`` (``person_id``)
  → ``{"success": true, "person": {…, "group_roles": {group: role}, "memberships":
  [group], "roles": [role], "approved_memberships": [group],
  "unapproved_memberships": [group]}}`` or ``{"success": false}``, where a role is
  ``{"person_id", "group_id", "role_type", "role_status", …}`` with role_type user,
  sponsor or administrator and role_status approved or unapproved; private people's
  names are hidden from viewers other than themselves and FAS admins;
* ``/json/group_by_name`` (``groupname``), ``/json/group_by_id`` (``group_id``) →
  ``{"success": true, "group": {…, "approved_roles": [role], "unapproved_roles":
  [role]}}`` or ``{"success": false}``;
* ``/group/dump/<group>`` → ``{"people": [[username, email, human_name, role_type,
  sponsored], …]}`` for the approved members, by username;
* anything else → 404.

``FasServer.fault`` makes it misbehave ("html", "exc", "http500", "shape") and
``FasServer.delay`` makes it slow; ``stop()`` takes it down (connections are refused).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

BASE_PATH = "/accounts/"
SESSION_COOKIE = "tg-visit"
#: FAS's admin and system groups: their approved members see private data
ADMIN_GROUPS = ("accounts", "fas-system")
ACTIVE_STATUSES = ("active", "bot")
CREATED = "2008-03-12 00:00:00+00:00"
FAULTS = (None, "html", "exc", "http500", "shape")


@dataclass
class FasGroup:
    """A FAS group."""

    id: int
    name: str
    display_name: str = ""
    group_type: str = "tracking"


@dataclass
class FasRole:
    """A person's role in a group (FAS's PersonRoles)."""

    group: str
    role_type: str = "user"
    role_status: str = "approved"


@dataclass
class FasPerson:
    """A FAS account."""

    id: int
    username: str
    password: str
    human_name: str = ""
    email: str = ""
    status: str = "active"
    privacy: bool = False
    roles: dict[str, FasRole] = field(default_factory=dict)


@dataclass(frozen=True)
class SeenRequest:
    """One request the server answered (the password left out)."""

    path: str
    params: dict[str, str]
    user: str | None
    session_cookie: str | None


class _Forbidden(Exception):
    """Answer 403, as TurboGears' identity does."""


class FasServer:
    """A FAS2 server in a background thread on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        self.people: dict[str, FasPerson] = {}
        self.groups: dict[str, FasGroup] = {}
        #: live visits (``tg-visit`` cookie) → the username logged in with them
        self.sessions: dict[str, str] = {}
        self.requests: list[SeenRequest] = []
        self.fault: str | None = None
        self.delay = 0.0
        self._ids = itertools.count(100001)
        self._group_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- test control ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give python-fedora (FAS lives under /accounts/)."""
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def add_group(self, name: str, display_name: str = "") -> FasGroup:
        """Create a group (or return the existing one)."""
        with self._lock:
            if name not in self.groups:
                self.groups[name] = FasGroup(next(self._group_ids), name, display_name or name)
            return self.groups[name]

    def add_person(
        self,
        username: str,
        password: str,
        human_name: str = "",
        email: str = "",
        *,
        status: str = "active",
        privacy: bool = False,
        groups: dict[str, tuple[str, str] | str] | None = None,
    ) -> FasPerson:
        """Create an account; ``groups`` maps group → role_type or (role_type, status)."""
        with self._lock:
            person = FasPerson(
                next(self._ids),
                username,
                password,
                human_name,
                email or f"{username}@example.org",
                status,
                privacy,
            )
            self.people[username] = person
            for group, role in (groups or {}).items():
                role_type, role_status = (role, "approved") if isinstance(role, str) else role
                self.add_membership(username, group, role_type, role_status)
            return person

    def add_membership(
        self, username: str, group: str, role_type: str = "user", role_status: str = "approved"
    ) -> None:
        """Put someone in a group (made if needed) with a role type and status."""
        with self._lock:
            self.add_group(group)
            self.people[username].roles[group] = FasRole(group, role_type, role_status)

    def remove_membership(self, username: str, group: str) -> None:
        """Take someone out of a group."""
        with self._lock:
            self.people[username].roles.pop(group, None)

    def remove_person(self, username: str) -> None:
        """Delete an account (and its sessions)."""
        with self._lock:
            self.people.pop(username, None)
            self.sessions = {k: v for k, v in self.sessions.items() if v != username}

    def seen(self, path: str) -> list[SeenRequest]:
        """The requests answered for a path (relative to the base, e.g. 'home')."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- running -----------------------------------------------------------------------

    def start(self) -> FasServer:
        """Listen on a free port and answer in a background thread."""
        server = self

        class Handler(_Handler):
            fas = server

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the server down: from now on connections are refused."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FasServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- FAS ---------------------------------------------------------------------------

    def answer(
        self, path: str, params: dict[str, str], headers: Any
    ) -> tuple[int, dict[str, Any], str]:
        """(status, JSON body, visit key for the ``tg-visit`` cookie) for a request to
        ``BASE_PATH + path``; raises _Forbidden for a 403."""
        with self._lock:
            cookie = _cookie(headers, SESSION_COOKIE)
            # TurboGears' visit: the cookie's key if it is a live visit, else a new one;
            # every answer sends the cookie back
            visit = cookie if cookie and cookie in self.sessions else secrets.token_hex(20)
            viewer = self._identify(params, headers, visit)
            self.requests.append(
                SeenRequest(
                    path,
                    {k: v for k, v in params.items() if k != "password"},
                    viewer.username if viewer else None,
                    cookie,
                )
            )
            if path == "login":
                if viewer is None:
                    raise _Forbidden
                token = hashlib.sha1(visit.encode(), usedforsecurity=False).hexdigest()
                body = {"user": self._person_json(viewer, viewer), "_csrf_token": token}
                return 200, body, visit
            if path == "logout":
                self.sessions.pop(visit, None)
                return 200, {}, secrets.token_hex(20)
            if viewer is None:  # everything else is @identity.require(not_anonymous())
                raise _Forbidden
            return 200, self._method(path, params, viewer), visit

    def _method(self, path: str, params: dict[str, str], viewer: FasPerson) -> dict[str, Any]:
        if path in ("home", "user/view"):
            return {"person": self._person_json(viewer, viewer)}
        if path == "json/person_by_username":
            person = self.people.get(params.get("username", ""))
            return self._found("person", person and self._person_json(person, viewer))
        if path == "json/person_by_id":
            person = self._by_id(params.get("person_id", ""))
            return self._found("person", person and self._person_json(person, viewer))
        if path == "json/group_by_name":
            group = self.groups.get(params.get("groupname", ""))
            return self._found("group", group and self._group_json(group, roles=True))
        if path == "json/group_by_id":
            wanted = params.get("group_id", "")
            group = next((g for g in self.groups.values() if str(g.id) == wanted), None)
            return self._found("group", group and self._group_json(group, roles=True))
        if path.startswith("group/dump/"):
            return {"people": self._dump(path[len("group/dump/") :], viewer)}
        raise LookupError(path)

    def _identify(self, params: dict[str, str], headers: Any, visit: str) -> FasPerson | None:
        """The person a request acts as; a login binds the visit to them."""
        username, password = params.get("user_name"), params.get("password")
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            decoded = base64.b64decode(basic[6:]).decode("utf-8", "replace")
            username, _, password = decoded.partition(":")
        elif username is not None and params.get("login") != "Login":
            username = None  # TG's identity only logs in when the login button was sent
        if username is not None:
            person = self.people.get(username)
            if (
                person is None
                or password is None
                or not secrets.compare_digest(person.password.encode(), password.encode())
                or person.status not in ACTIVE_STATUSES
            ):
                raise _Forbidden
            self.sessions[visit] = person.username
            return person
        if visit in self.sessions:
            token = hashlib.sha1(visit.encode(), usedforsecurity=False).hexdigest()
            # python-fedora's CSRF protection: a session without its token is anonymous
            if params.get("_csrf_token") == token:
                return self.people.get(self.sessions[visit])
        return None

    def _by_id(self, person_id: str) -> FasPerson | None:
        return next((p for p in self.people.values() if str(p.id) == person_id), None)

    @staticmethod
    def _found(key: str, value: Any) -> dict[str, Any]:
        """FAS's answer to a lookup: the record, or ``success: false``."""
        return {"success": True, key: value} if value else {"success": False}

    def _sees_private(self, viewer: FasPerson, person: FasPerson) -> bool:
        if viewer.username == person.username or not person.privacy:
            return True
        return any(
            g in viewer.roles and viewer.roles[g].role_status == "approved" for g in ADMIN_GROUPS
        )

    def _group_json(self, group: FasGroup, roles: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": group.id,
            "name": group.name,
            "display_name": group.display_name,
            "group_type": group.group_type,
            "owner_id": 100000,
            "needs_sponsor": True,
            "user_can_remove": True,
            "invite_only": False,
            "prerequisite_id": None,
            "joinmsg": "",
            "apply_rules": "",
            "url": "",
            "mailing_list": "",
            "irc_channel": "",
            "irc_network": "",
            "creation": CREATED,
        }
        if roles:
            members = [
                (p, p.roles[group.name]) for p in self.people.values() if group.name in p.roles
            ]
            data["approved_roles"] = [
                self._role_json(p, r) for p, r in members if r.role_status == "approved"
            ]
            data["unapproved_roles"] = [
                self._role_json(p, r) for p, r in members if r.role_status != "approved"
            ]
        return data

    def _role_json(self, person: FasPerson, role: FasRole) -> dict[str, Any]:
        return {
            "person_id": person.id,
            "group_id": self.groups[role.group].id,
            "role_type": role.role_type,
            "role_status": role.role_status,
            "internal_comments": None,
            "sponsor_id": None,
            "creation": CREATED,
            "approval": CREATED if role.role_status == "approved" else None,
        }

    def _person_json(self, person: FasPerson, viewer: FasPerson) -> dict[str, Any]:
        visible = self._sees_private(viewer, person)
        roles = sorted(person.roles.values(), key=lambda r: r.group)
        groups = [self._group_json(self.groups[r.group]) for r in roles]
        return {
            "id": person.id,
            "username": person.username,
            "human_name": person.human_name if visible else None,
            "email": person.email,
            "status": person.status,
            "privacy": person.privacy,
            "password": "*",
            "ircnick": None,
            "gpg_keyid": None,
            "ssh_key": None,
            "comments": None,
            "affiliation": None,
            "creation": CREATED,
            "last_seen": CREATED,
            "locale": "C",
            "timezone": "UTC",
            "country_code": None,
            "group_roles": {r.group: self._role_json(person, r) for r in roles},
            "memberships": groups,
            "roles": [self._role_json(person, r) for r in roles],
            "approved_memberships": [
                g for g, r in zip(groups, roles, strict=True) if r.role_status == "approved"
            ],
            "unapproved_memberships": [
                g for g, r in zip(groups, roles, strict=True) if r.role_status != "approved"
            ],
        }

    def _dump(self, group: str, viewer: FasPerson) -> list[list[Any]]:
        rows = []
        for person in sorted(self.people.values(), key=lambda p: p.username):
            role = person.roles.get(group)
            if role is None or role.role_status != "approved":
                continue
            name = person.human_name if self._sees_private(viewer, person) else ""
            rows.append([person.username, person.email, name, role.role_type, 0])
        return rows


def _cookie(headers: Any, name: str) -> str | None:
    for part in headers.get("Cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into FasServer.answer calls."""

    fas: FasServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _params(self) -> dict[str, str]:
        query = urlsplit(self.path).query
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        params: dict[str, str] = {}
        for source in (query, body):
            for key, values in parse_qs(source, keep_blank_values=True).items():
                params[key] = values[-1]
        return params

    def _send(self, status: int, body: bytes, content_type: str, cookie: str | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", f"{SESSION_COOKIE}={cookie}; Path=/; HttpOnly")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, cookie: str | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", cookie)

    def _serve(self) -> None:
        fas = self.fas
        params = self._params()
        if fas.delay and fas._stopping.wait(fas.delay):
            return
        fault = fas.fault
        if fault == "html":
            page = b"<html><body>Fedora Account System: down for maintenance</body></html>"
            return self._send(200, page, "text/html; charset=utf-8", None)
        if fault == "http500":
            return self._send(500, b"Internal Server Error", "text/plain", None)
        if fault == "exc":
            data = {"exc": "ProgrammingError", "tg_flash": "the database went away"}
            return self._json(200, data)
        if fault == "shape":
            return self._json(200, {"unexpected": ["not", "a", "FAS", "answer"]})
        path = unquote(urlsplit(self.path).path)
        if not path.startswith(BASE_PATH):
            return self._send(404, b"Not Found", "text/plain", None)
        try:
            status, data, session = fas.answer(
                path[len(BASE_PATH) :].strip("/"), params, self.headers
            )
        except _Forbidden:
            refusal: dict[str, Any] = {
                "tg_flash": "The credentials you supplied were not correct.",
                "logging_in": True,
            }
            return self._json(403, refusal)
        except LookupError:
            return self._send(404, b"Not Found", "text/plain", None)
        self._json(status, data, session)


@pytest.fixture
def fas_server() -> Iterator[FasServer]:
    """A running FAS2 server with a service account ('cloudsvc', in fas-system)."""
    server = FasServer()
    server.add_person(
        "cloudsvc", "service-password", "FedoraCloud service", groups={"fas-system": "user"}
    )
    with server:
        yield server
