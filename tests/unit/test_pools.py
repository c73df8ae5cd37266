"""The pool tree service: create, rename, move, delete, subtree, and the database's own rules."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fedoracloud.models import AuditEvent, Pool, PoolKind
from fedoracloud.services import Conflict, InvalidInput
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService

from ..factories import HostFactory, VmFactory


@pytest.fixture
def pools(dbsession):
    return PoolService(ServiceContext.for_session(dbsession))


def test_builtin_pools_are_idempotent(pools, dbsession):
    first = pools.ensure_builtin()
    second = pools.ensure_builtin()
    assert {k: p.id for k, p in first.items()} == {k: p.id for k, p in second.items()}
    assert pools.name_path(first["default"]) == "root/hardware/default"
    assert dbsession.scalar(select(Pool).where(Pool.parent_id.is_(None))).name == "root"


def test_paths_and_subtree_in_tree_order(pools, tree):
    fedora = tree["fedora"]
    assert fedora.path == f"{tree['hardware'].path}{fedora.id}/"
    names = [p.name for p in pools.subtree(tree["hardware"])]
    assert names[0] == "hardware"
    assert set(names) == {"hardware", "default", "fedora", "fedora-vms", "redhat", "redhat-vms"}
    assert [p.name for p in pools.subtree(fedora)] == ["fedora", "fedora-vms"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "needs a name"),
        ("x" * 65, "at most 64"),
        ("-leading", "starts with a letter or digit"),
        ("has space", "only letters"),
        ("a/b", "only letters"),
        ("<script>", "only letters"),
        ("quote'd", "only letters"),
    ],
)
def test_bad_pool_names_are_refused_and_nothing_written(pools, tree, dbsession, name, message):
    before = dbsession.scalar(select(Pool.id).order_by(Pool.id.desc()))
    with pytest.raises(InvalidInput, match=message):
        pools.create(name, PoolKind.HARDWARE, tree["hardware"])
    assert dbsession.scalar(select(Pool.id).order_by(Pool.id.desc())) == before


def test_duplicate_sibling_name_is_a_conflict(pools, tree):
    with pytest.raises(Conflict, match="already exists in 'hardware'"):
        pools.create("fedora", PoolKind.HARDWARE, tree["hardware"])
    # the same name elsewhere in the tree is fine
    pools.create("fedora", PoolKind.VM, tree["redhat"])


@pytest.mark.parametrize(
    "kind, parent, message",
    [
        (PoolKind.VM, "root", "VM pool must be inside a hardware pool"),
        (PoolKind.VM, "fedora-vms", "VM pool must be inside a hardware pool"),
        (PoolKind.HARDWARE, "fedora-vms", "hardware pool must be inside a directory or hardware"),
        (PoolKind.DIRECTORY, "fedora", "directory pool must be inside a directory"),
        (PoolKind.SMART, "fedora", "smart pool must be inside a directory"),
    ],
)
def test_kinds_in_the_wrong_place_are_refused(pools, tree, kind, parent, message):
    with pytest.raises(InvalidInput, match=message):
        pools.create("newpool", kind, tree[parent])


def test_unknown_kind(pools, tree):
    with pytest.raises(InvalidInput, match="unknown pool kind 'cluster'"):
        pools.create("x", "cluster", tree["root"])


def test_the_database_itself_refuses_a_vm_pool_outside_hardware(dbsession, tree):
    root = tree["root"]
    with pytest.raises(IntegrityError), dbsession.begin_nested():
        dbsession.add(
            Pool(
                name="sneaky",
                kind="vm",
                parent_id=root.id,
                parent_kind=root.kind,
                path="/x/",
                depth=1,
            )
        )
        dbsession.flush()


def test_the_database_refuses_a_lying_parent_kind(dbsession, tree):
    root = tree["root"]
    with pytest.raises(IntegrityError), dbsession.begin_nested():
        # parent_kind must match the parent's real kind (composite foreign key)
        dbsession.add(
            Pool(
                name="liar",
                kind="vm",
                parent_id=root.id,
                parent_kind="hardware",
                path="/y/",
                depth=1,
            )
        )
        dbsession.flush()


def test_rename(pools, tree, dbsession):
    pools.rename(tree["fedora"], "fedora-hw")
    assert tree["fedora"].name == "fedora-hw"
    event = dbsession.scalars(select(AuditEvent).where(AuditEvent.action == "pool.rename")).one()
    assert event.before["name"] == "fedora" and event.after["name"] == "fedora-hw"
    with pytest.raises(Conflict):
        pools.rename(tree["fedora"], "redhat")


def test_move_rewrites_the_whole_subtree(pools, tree, dbsession):
    lab = pools.create("lab", PoolKind.HARDWARE, tree["redhat"])
    moved = pools.move(tree["fedora"], lab)
    vms = dbsession.get(Pool, tree["fedora-vms"].id)
    assert moved.parent_id == lab.id
    assert moved.path == f"{lab.path}{moved.id}/"
    assert vms.path == f"{moved.path}{vms.id}/"
    assert vms.depth == lab.depth + 2
    assert {p.name for p in pools.subtree(tree["redhat"])} == {
        "redhat",
        "lab",
        "fedora",
        "fedora-vms",
        "redhat-vms",
    }
    assert [p.name for p in pools.subtree(tree["fedora"])] == ["fedora", "fedora-vms"]


def test_move_refuses_cycles(pools, tree):
    with pytest.raises(InvalidInput, match="into itself or one of its own sub-pools"):
        pools.move(tree["hardware"], tree["fedora"])
    with pytest.raises(InvalidInput, match="into itself"):
        pools.move(tree["fedora"], tree["fedora"])


def test_move_refuses_wrong_kind_and_root(pools, tree):
    with pytest.raises(InvalidInput, match="VM pool must be inside a hardware pool"):
        pools.move(tree["fedora-vms"], tree["users"])
    with pytest.raises(InvalidInput, match="root pool cannot be moved"):
        pools.move(tree["root"], tree["users"])


def test_move_refuses_a_name_clash(pools, tree):
    pools.create("fedora-vms", PoolKind.VM, tree["redhat"])
    with pytest.raises(Conflict, match="already exists"):
        pools.move(tree["fedora-vms"], tree["redhat"])


def test_delete_refuses_non_empty_pools(pools, tree, dbsession):
    with pytest.raises(Conflict, match="holds 1 sub-pool"):
        pools.delete(tree["fedora"])
    HostFactory(pool=tree["redhat"])
    VmFactory(pool=tree["redhat-vms"])
    with pytest.raises(Conflict, match="holds 1 VM"):
        pools.delete(tree["redhat-vms"])
    with pytest.raises(Conflict, match="1 sub-pool, 1 host"):
        pools.delete(tree["redhat"])


def test_delete_an_empty_pool(pools, tree, dbsession):
    pool_id = tree["fedora-vms"].id
    pools.delete(tree["fedora-vms"])
    assert dbsession.get(Pool, pool_id) is None


def test_builtin_pools_cannot_be_deleted(pools, tree):
    for name in ("root", "default", "users"):
        with pytest.raises(InvalidInput, match="cannot be deleted"):
            pools.delete(tree[name])


def test_tree_counts_whole_subtrees(pools, tree):
    from sqlalchemy import true

    HostFactory(pool=tree["fedora"])
    HostFactory(pool=tree["fedora"])
    VmFactory(pool=tree["fedora-vms"])
    forest = pools.tree(true())
    root = forest[0]
    assert root.pool.name == "root" and root.hosts == 2 and root.vms == 1
    hardware = next(n for n in root.children if n.pool.name == "hardware")
    fedora = next(n for n in hardware.children if n.pool.name == "fedora")
    assert (fedora.hosts, fedora.vms) == (2, 1)


def test_by_path_names(pools, tree):
    assert pools.by_path_names("root/hardware/fedora").id == tree["fedora"].id
    assert pools.by_path_names("fedora").id == tree["fedora"].id
