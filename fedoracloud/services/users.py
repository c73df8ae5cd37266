"""Users: who logged in, and the local password file's accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import User


class UserService:
    """Creating and updating users."""

    def __init__(self, dbsession: Session, actor: Any = None, remote_addr: str = "") -> None:
        self.dbsession = dbsession
        self.actor = actor
        self.remote_addr = remote_addr

    def get_or_create(self, username: str) -> User:
        """The user with this name, created if new."""
        user = self.dbsession.scalars(select(User).where(User.username == username)).first()
        if user is None:
            user = User(username=username)
            self.dbsession.add(user)
            self.dbsession.flush()
        return user
