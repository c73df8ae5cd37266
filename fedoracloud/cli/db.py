"""``fedoracloud initdb`` and ``fedoracloud demo``: the schema, the built-in pools, the demo."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .context import Context, add_command


def alembic_config(ctx: Context) -> Any:
    """Alembic's config for this ini, with the app's settings passed to env.py."""
    from alembic.config import Config

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(package), "alembic"))
    cfg.attributes["settings"] = ctx.raw_settings
    return cfg


def upgrade_database(ctx: Context) -> None:
    """Bring the schema to the newest migration."""
    from alembic import command

    ctx.check_database()
    command.upgrade(alembic_config(ctx), "head")


def cmd_initdb(ctx: Context, args: argparse.Namespace) -> None:
    """Upgrade the schema and create the built-in pools (safe to run again)."""
    from ..services.pools import PoolService

    upgrade_database(ctx)
    with ctx.session() as dbsession:
        made = PoolService(ctx.service_context(dbsession)).ensure_builtin()
    print("database ready: " + ", ".join(sorted(made)) + " pools exist")


def cmd_demo(ctx: Context, args: argparse.Namespace) -> None:
    """Load the demo: the seed's pools, eight fake hosts read through libvirt, three people."""
    from ..demo import DEMO_PEOPLE, ensure_demo_people, load_demo
    from ..demo_graphs import write_demo_graphs

    upgrade_database(ctx)
    os.makedirs(ctx.settings.instance_dir, exist_ok=True)
    made: dict[str, str] = {}
    if ctx.settings.auth_backend == "htpasswd":
        made = ensure_demo_people(
            ctx.settings.htpasswd_file,
            ctx.settings.htpasswd_groups_file,
            ctx.settings.instance_dir,
        )
    with ctx.session() as dbsession:
        result = load_demo(dbsession, ctx.settings, progress=print)
        graphs = write_demo_graphs(dbsession, ctx.settings)
    print(f"demo ready: {len(result['hosts'])} hosts, {len(result['vm_pools'])} VM pools")
    if graphs is not None:
        print(
            f"demo graphs: a day of made-up statistics for {graphs.hosts} hosts and"
            f" {graphs.vms} VMs in {graphs.directory}"
        )
    for username, what in DEMO_PEOPLE:
        if username in made:
            print(f"demo login: '{username}' with password '{made[username]}' ({what})")
    if made:
        print(f"(passwords shown once; also in {ctx.settings.instance_dir}/demo-*-password)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``initdb`` and ``demo``."""
    add_command(sub, "initdb", cmd_initdb, "create or upgrade the database and the built-in pools")
    add_command(
        sub, "demo", cmd_demo, "load the demo: the seed's pools and eight fake libvirt hosts"
    )
