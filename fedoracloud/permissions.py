"""Permissions and the role → permissions table (docs/architecture.md §3)."""

from __future__ import annotations

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


def strongest(roles: list[Role]) -> Role | None:
    """The strongest of some roles, or None."""
    return max(roles, key=ROLE_RANK.__getitem__) if roles else None
