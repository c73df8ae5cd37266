"""``fedoracloud pool``: list, create, move or delete pools."""

from __future__ import annotations

import argparse
from typing import Any

from .context import Context, add_action, add_command


def _pool_line(pools: Any, pool: Any) -> str:
    return f"{pool.id:>5}  {pool.kind:<9}  {pools.name_path(pool)}"


def cmd_pool(ctx: Context, args: argparse.Namespace) -> None:
    """List, create, move or delete pools."""
    from ..services.pools import PoolService

    with ctx.session() as dbsession:
        pools = PoolService(ctx.service_context(dbsession))
        if args.pool_command == "list":
            for pool in pools.subtree(pools.root()):
                print(_pool_line(pools, pool))
        elif args.pool_command == "create":
            parent = pools.by_path_names(args.parent)
            pool = pools.create(args.name, args.kind, parent, args.description)
            print("created " + _pool_line(pools, pool))
        elif args.pool_command == "move":
            pool = pools.move(pools.by_path_names(args.pool), pools.by_path_names(args.parent))
            print("moved  " + _pool_line(pools, pool))
        elif args.pool_command == "delete":
            pool = pools.by_path_names(args.pool)
            name = pools.name_path(pool)
            pools.delete(pool)
            print(f"deleted {name}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``pool list|create|move|delete``."""
    pool = add_command(sub, "pool", cmd_pool, "list, create, move or delete pools")
    actions = pool.add_subparsers(dest="pool_command", required=True, metavar="ACTION")
    add_action(actions, "list", "the pool tree")
    create = add_action(actions, "create", "make a pool")
    create.add_argument("name")
    create.add_argument("--kind", required=True, choices=["directory", "hardware", "vm"])
    create.add_argument(
        "--parent",
        required=True,
        help="the parent: a unique name or a path such as root/hardware/fedora",
    )
    create.add_argument("--description", default="")
    move = add_action(actions, "move", "move a pool under another")
    move.add_argument("pool")
    move.add_argument("--parent", required=True)
    delete = add_action(actions, "delete", "delete an empty pool")
    delete.add_argument("pool")
