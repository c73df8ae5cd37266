"""Users: who logged in, and the local password file's accounts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload
from zope.interface import Interface

from ..models import User
from . import InvalidInput
from .context import Service


class IUserService(Interface):
    """Marker for pyramid-services: ``request.find_service(IUserService)``."""


class UserService(Service):
    """Creating and updating users."""

    def get_or_create(self, username: str) -> User:
        """The user with this name, created if new."""
        user = self.dbsession.scalars(select(User).where(User.username == username)).first()
        if user is None:
            user = User(username=username)
            self.dbsession.add(user)
            self.dbsession.flush()
        return user


#: the people list's sortable columns
USER_SORT_COLUMNS = {
    "username": User.username,
    "name": User.display_name,
    "last_login": User.last_login_at,
}


@dataclass
class UserQuery:
    """The people list: a search (user name, name or e-mail), a sort column, a page."""

    q: str = ""
    sort: str = "username"
    descending: bool = False
    page: int = 1
    per_page: int = 25

    def validate(self) -> UserQuery:
        if self.sort not in USER_SORT_COLUMNS:
            raise InvalidInput(
                f"cannot sort people by {self.sort[:32]!r}; by one of "
                + ", ".join(USER_SORT_COLUMNS),
                {"field": "sort"},
            )
        if self.page < 1 or self.page > 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        if len(self.q) > 255:
            raise InvalidInput("a search has at most 255 characters", {"field": "q"})
        return self


def search_users(dbsession: Session, query: UserQuery) -> tuple[list[User], int]:
    """One page of people (with their memberships, one more query) and the total; ``%`` and
    ``_`` in the search match themselves."""
    query.validate()
    where = []
    if query.q:
        where.append(
            or_(
                User.username.contains(query.q, autoescape=True),
                User.display_name.contains(query.q, autoescape=True),
                User.email.contains(query.q, autoescape=True),
            )
        )
    total = int(dbsession.scalar(select(func.count(User.id)).where(*where)) or 0)
    column = USER_SORT_COLUMNS[query.sort]
    order = column.desc() if query.descending else column.asc()
    if query.sort == "last_login":
        order = order.nulls_last()
    rows = dbsession.scalars(
        select(User)
        .where(*where)
        .options(selectinload(User.memberships))
        .order_by(order, User.username)
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    ).all()
    return list(rows), total
