"""``fedoracloud user add``: a person in the local (htpasswd) password file."""

from __future__ import annotations

import argparse
import getpass
import sys

from .context import CliError, Context, add_action, add_command


def cmd_user(ctx: Context, args: argparse.Namespace) -> None:
    """Add a user to the local password file."""
    from ..auth.htpasswd import HtpasswdBackend, InvalidUsername, check_username
    from ..models import RoleGrant
    from ..permissions import Role
    from ..services.pools import PoolService
    from ..services.users import UserService

    if ctx.settings.auth_backend != "htpasswd":
        raise CliError(
            "user add manages the local password file; this ini uses the "
            f"{ctx.settings.auth_backend} login backend"
        )
    try:
        username = check_username(args.username)
    except InvalidUsername as exc:
        raise CliError(str(exc)) from exc
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {username}: ")
        if password != getpass.getpass("Again: "):
            raise CliError("the two passwords differ")
    if not password:
        raise CliError("an empty password is not allowed")
    with ctx.session() as dbsession:
        user = UserService(dbsession).get_or_create(username)
        if args.admin:
            root = PoolService(dbsession).root()
            grant = dbsession.query(RoleGrant).filter_by(pool_id=root.id, user_id=user.id).first()
            if grant is None:
                dbsession.add(
                    RoleGrant(pool_id=root.id, user_id=user.id, role=Role.SUPER_ADMIN.value)
                )
            else:
                grant.role = Role.SUPER_ADMIN.value
    HtpasswdBackend(ctx.settings.htpasswd_file).set_password(username, password)
    print(f"user {username} {'(super admin) ' if args.admin else ''}can log in")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``user add NAME [--admin] [--password-stdin]``."""
    user = add_command(sub, "user", cmd_user, "manage local (htpasswd) users")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = add_action(actions, "add", "add a user or set their password")
    user_add.add_argument("username")
    user_add.add_argument(
        "--admin", action="store_true", help="make them super admin (a super_admin grant on root)"
    )
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
