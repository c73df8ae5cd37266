"""Permissions, roles, and the rules the security policy decides them by: the role →
permissions table and the few rules that are not a pool's role (docs/architecture.md §3)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    """Everything a view or a service may ask the security policy about."""

    VIEW = "view"
    VM_CONTROL = "vm_control"
    CONSOLE = "console"
    VM_REQUEST = "vm_request"
    VM_CREATE = "vm_create"
    VM_MODIFY = "vm_modify"
    VM_DELETE = "vm_delete"
    HOST_APPROVE = "host_approve"
    HOST_MOVE = "host_move"
    POOL_CREATE = "pool_create"
    POOL_MODIFY = "pool_modify"
    QUOTA = "quota"
    VIEW_PERMS = "view_perms"
    SET_PERMS = "set_perms"
    SITE_SETTINGS = "site_settings"
    APPROVE_ACCESS = "approve_access"
    #: cancel a task (its owner; else what TASK_CANCEL_NEEDS names on its target's pool)
    TASK_CANCEL = "task_cancel"
    #: add a host somewhere (whoever may approve hosts in some pool)
    HOST_ADD = "host_add"


class Role(StrEnum):
    """Roles a user or group may hold on a pool, weakest first."""

    MONITOR = "monitor"
    USER = "user"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"


_MONITOR = frozenset({Permission.VIEW})
_USER = _MONITOR | {Permission.VM_CONTROL, Permission.CONSOLE, Permission.VM_REQUEST}
_ADMIN = _USER | {
    Permission.VM_CREATE,
    Permission.VM_MODIFY,
    Permission.VM_DELETE,
    Permission.HOST_APPROVE,
    Permission.HOST_MOVE,
    Permission.POOL_CREATE,
    Permission.POOL_MODIFY,
    Permission.QUOTA,
    Permission.VIEW_PERMS,
    Permission.SET_PERMS,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.MONITOR: _MONITOR,
    Role.USER: frozenset(_USER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.SUPER_ADMIN: frozenset(Permission),
}

ROLE_RANK: dict[Role, int] = {role: rank for rank, role in enumerate(Role)}

#: what cancelling someone else's task needs on its target's pool, by target type
TASK_CANCEL_NEEDS: dict[str, Permission] = {
    "vm": Permission.VM_CONTROL,
    "host": Permission.HOST_APPROVE,
    "pool": Permission.POOL_MODIFY,
}

#: site-level permissions held by whoever holds a permission on some pool
HELD_ANYWHERE: dict[str, Permission] = {Permission.HOST_ADD: Permission.HOST_APPROVE}

#: the weakest role on a hardware pool that shows the storage pools it uses
STORAGE_ROLE = Role.ADMIN


def strongest(roles: Iterable[Role | None]) -> Role | None:
    """The strongest of some roles (None counts as no role), or None."""
    held = [role for role in roles if role is not None]
    return max(held, key=ROLE_RANK.__getitem__) if held else None


def role_allows(role: Role | None, permission: str) -> bool:
    """Whether a role (None: no role at all) carries a permission."""
    return role is not None and permission in ROLE_PERMISSIONS[role]


def at_least(role: Role | None, floor: Role) -> bool:
    """Whether a role (None: no role at all) is as strong as ``floor`` or stronger."""
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[floor]


def grantable(mine: Role | None) -> list[Role]:
    """The roles someone holding ``mine`` on a pool may grant there: none above their own."""
    return [role for role in Role if at_least(mine, role)]
