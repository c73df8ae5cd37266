"""The htpasswd login backend: the seed's interim Apache password file (bcrypt or apr1-MD5),
with group memberships from a groups file in Apache's ``AuthGroupFile`` style::

    # group: members, separated by spaces
    sysadmin-cloud: @admin alice bob ~carol
    cloud-ops: alice

``@name`` marks an administrator of the group and ``~name`` a membership that is not yet
approved (FAS's role type and status); a plain name is an approved member.
"""

from __future__ import annotations

import os
import re
import threading

from passlib.apache import HtpasswdFile

from ..models.user import USERNAME_MAX, USERNAME_PATTERN
from . import Membership, Person

_USERNAME = re.compile(USERNAME_PATTERN)
PASSWORD_MAX = 1024


class InvalidUsername(ValueError):
    """A username that FedoraCloud does not accept."""


def check_username(username: str) -> str:
    """Return the username if it is acceptable, else raise InvalidUsername with why."""
    if not username:
        raise InvalidUsername("a username is required")
    if len(username) > USERNAME_MAX:
        raise InvalidUsername(f"a username has at most {USERNAME_MAX} characters")
    if not _USERNAME.fullmatch(username):
        raise InvalidUsername(
            "a username starts with a lowercase letter or _ and has only lowercase letters,"
            " digits, '.', '_' and '-'"
        )
    return username


class HtpasswdBackend:
    """Checks passwords against an Apache htpasswd file, re-read when it changes."""

    def __init__(self, path: str, groups_file: str = "") -> None:
        self.path = path
        self.groups_file = groups_file
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._file: HtpasswdFile | None = None

    def _load(self) -> HtpasswdFile:
        with self._lock:
            try:
                mtime = os.stat(self.path).st_mtime
            except FileNotFoundError:
                return HtpasswdFile()
            if self._file is None or mtime != self._mtime:
                self._file = HtpasswdFile(self.path)
                self._mtime = mtime
            return self._file

    def verify(self, username: str, password: str) -> bool:
        """True if the file has this user with this password."""
        if not password or len(password) > PASSWORD_MAX:
            return False
        try:
            check_username(username)
        except InvalidUsername:
            return False
        return bool(self._load().check_password(username, password))

    def authenticate(self, username: str, password: str) -> Person | None:
        """The person, with their groups, if the password is right."""
        if not self.verify(username, password):
            return None
        return Person(username=username, memberships=self.memberships(username) or ())

    def memberships(self, username: str) -> tuple[Membership, ...] | None:
        """The groups file's memberships of a user (None if the password file lost them)."""
        if not self.has_user(username):
            return None
        return tuple(
            Membership(group, role, status)
            for group, members in read_groups(self.groups_file).items()
            for name, role, status in members
            if name == username
        )

    def group_members(self, group: str) -> list[Person]:
        """Everyone the groups file lists in a group."""
        return [
            Person(username=name, memberships=(Membership(group, role, status),))
            for name, role, status in read_groups(self.groups_file).get(group, [])
        ]

    def has_user(self, username: str) -> bool:
        """True if the file has an entry for this user."""
        return username in self._load().users()

    def set_password(self, username: str, password: str) -> None:
        """Add or change a user's password (bcrypt), writing the file atomically."""
        check_username(username)
        if not password or len(password) > PASSWORD_MAX:
            raise ValueError(f"a password has 1 to {PASSWORD_MAX} characters")
        with self._lock:
            exists = os.path.exists(self.path)
            ht = HtpasswdFile(self.path, new=not exists, default_scheme="bcrypt")
            ht.set_password(username, password)
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            tmp = f"{self.path}.tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                out.write(ht.to_string())
            os.replace(tmp, self.path)
            self._file = None


def read_groups(path: str) -> dict[str, list[tuple[str, str, str]]]:
    """group → [(username, role type, status)] from a groups file ({} if there is none)."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    if not path:
        return groups
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                line = line.split("#", 1)[0].strip()
                if ":" not in line:
                    continue
                group, _, names = line.partition(":")
                members = groups.setdefault(group.strip(), [])
                for token in names.split():
                    role, status = "user", "approved"
                    if token.startswith("@"):
                        role, token = "administrator", token[1:]
                    elif token.startswith("~"):
                        status, token = "unapproved", token[1:]
                    if _USERNAME.fullmatch(token) and len(token) <= USERNAME_MAX:
                        members.append((token, role, status))
    except FileNotFoundError:
        pass
    return groups


def add_member(path: str, group: str, username: str) -> bool:
    """Make ``username`` an approved member of ``group`` in the groups file (a ``~name``
    waiting for approval becomes ``name``; ``@name`` stays an administrator), keeping every
    other line and comment; written atomically.  False if they already were."""
    check_username(username)
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except FileNotFoundError:
        lines = []
    for i, line in enumerate(lines):
        content, hash_, comment = line.partition("#")
        name, colon, members = content.partition(":")
        if not colon or name.strip() != group:
            continue
        tokens = members.split()
        if username in tokens or f"@{username}" in tokens:
            return False
        tokens = [t for t in tokens if t != f"~{username}"] + [username]
        lines[i] = f"{name.strip()}: {' '.join(tokens)}" + (f"  #{comment}" if hash_ else "")
        break
    else:
        lines.append(f"{group}: {username}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return True
