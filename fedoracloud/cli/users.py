"""``fedoracloud user add``: a person in the local (htpasswd) password file."""

from __future__ import annotations

import argparse
import getpass
import sys

from .context import CliError, Context, add_action, add_command


def cmd_user(ctx: Context, args: argparse.Namespace) -> None:
    """Add a user to the local password file; ``--admin`` also makes them an approved member
    of the access group (the groups file) with a super_admin grant on root.  Says whether
    the gate will let them in, and why not."""
    from ..auth.htpasswd import HtpasswdBackend, InvalidUsername, add_member, check_username
    from ..models import RoleGrant
    from ..permissions import Role
    from ..services.access import judge
    from ..services.pools import PoolService
    from ..services.users import UserService

    settings = ctx.settings
    if settings.auth_backend != "htpasswd":
        raise CliError(
            "user add manages the local password file; this ini uses the "
            f"{settings.auth_backend} login backend, where people and their groups live"
        )
    try:
        username = check_username(args.username)
    except InvalidUsername as exc:
        raise CliError(str(exc)) from exc
    if args.admin and not settings.htpasswd_groups_file:
        raise CliError(
            f"--admin makes {username} an approved member of {settings.access_group} in the"
            " groups file, and setting fedoracloud.htpasswd.groups_file is empty; set it"
            f" (or list {username} in fedoracloud.admins)"
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {username}: ")
        if password != getpass.getpass("Again: "):
            raise CliError("the two passwords differ")
    if not password:
        raise CliError("an empty password is not allowed")
    backend = HtpasswdBackend(settings.htpasswd_file, settings.htpasswd_groups_file)
    with ctx.session() as dbsession:
        user = UserService(ctx.service_context(dbsession)).get_or_create(username)
        root = PoolService(ctx.service_context(dbsession)).root()
        grant = dbsession.query(RoleGrant).filter_by(pool_id=root.id, user_id=user.id).first()
        if args.admin:
            if grant is None:
                grant = RoleGrant(pool_id=root.id, user_id=user.id, role=Role.SUPER_ADMIN.value)
                dbsession.add(grant)
            else:
                grant.role = Role.SUPER_ADMIN.value
        super_grant = grant is not None and grant.role == Role.SUPER_ADMIN.value
        backend.set_password(username, password)
        if args.admin:
            add_member(settings.htpasswd_groups_file, settings.access_group, username)
        gate = judge(user, backend.memberships(username) or (), super_grant, settings)
    if not gate.has_access:
        print(
            f"user {username} can log in, but is not let in ({gate.why}):"
            " they will see the access request page"
        )
    else:
        print(f"user {username} {'(super admin) ' if gate.is_super_admin else ''}can log in")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``user add NAME [--admin] [--password-stdin]``."""
    user = add_command(sub, "user", cmd_user, "manage local (htpasswd) users")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = add_action(actions, "add", "add a user or set their password")
    user_add.add_argument("username")
    user_add.add_argument(
        "--admin",
        action="store_true",
        help="make them super admin: an approved member of the access group (the groups"
        " file) with a super_admin grant on root",
    )
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
