"""The htpasswd login backend: the seed's interim Apache password file (bcrypt or apr1-MD5)."""

from __future__ import annotations

import os
import re
import threading

from passlib.apache import HtpasswdFile

from ..models.user import USERNAME_MAX, USERNAME_PATTERN

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
    if not _USERNAME.match(username):
        raise InvalidUsername(
            "a username starts with a lowercase letter or _ and has only lowercase letters,"
            " digits, '.', '_' and '-'"
        )
    return username


class HtpasswdBackend:
    """Checks passwords against an Apache htpasswd file, re-read when it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
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
