"""Quotas: inherited down the tree, the root's explicit default, usage and the check."""

from __future__ import annotations

import pytest

from fedoracloud.models import PoolKind, VmDisk, VmNic
from fedoracloud.services import Conflict, InvalidInput
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.quotas import ROOT_DEFAULT, QuotaService

from ..factories import VmFactory


@pytest.fixture
def quotas(dbsession):
    return QuotaService(ServiceContext.for_session(dbsession))


def limits(quotas, pool):
    return {
        limit.field: (limit.limit, limit.source.name if limit.source else None, limit.used)
        for limit in quotas.effective(pool)
    }


def test_root_default_is_explicit_and_inherited(quotas, tree):
    assert quotas.own(tree["root"]) is not None
    got = limits(quotas, tree["fedora-vms"])
    assert {f: v[0] for f, v in got.items()} == ROOT_DEFAULT
    assert {v[1] for v in got.values()} == {"root"}


def test_a_pool_without_its_own_row_is_limited_by_its_ancestors(quotas, tree, dbsession):
    quotas.set(tree["fedora"], {"vcpus": 8, "vms": 2})
    got = limits(quotas, tree["fedora-vms"])
    assert got["vcpus"][:2] == (8, "fedora")
    assert got["vms"][:2] == (2, "fedora")
    assert got["memory_mib"][:2] == (ROOT_DEFAULT["memory_mib"], "root")


def test_usage_counts_the_subtree(quotas, tree, dbsession):
    vm = VmFactory(pool=tree["fedora-vms"], vcpus=2, memory_mib=1024)
    dbsession.add_all(
        [
            VmNic(vm_id=vm.id, mac="52:54:00:01:02:03"),
            VmDisk(vm_id=vm.id, target_dev="vda", size_gib=20),
        ]
    )
    VmFactory(pool=tree["redhat-vms"], vcpus=4)
    dbsession.flush()
    assert quotas.usage(tree["fedora"]) == {
        "vcpus": 2,
        "memory_mib": 1024,
        "vms": 1,
        "nics": 1,
        "storage_gib": 20,
    }
    assert quotas.usage(tree["root"])["vcpus"] == 6


def test_check_refuses_past_any_limit_above(quotas, tree):
    quotas.set(tree["fedora"], {"vcpus": 4})
    VmFactory(pool=tree["fedora-vms"], vcpus=3)
    quotas.check(tree["fedora-vms"], vcpus=1)
    with pytest.raises(Conflict, match="quota of pool 'fedora' exceeded: vCPUs would be 5"):
        quotas.check(tree["fedora-vms"], vcpus=2)
    # a deeper, looser limit does not lift a tighter one above
    quotas.set(tree["fedora-vms"], {"vcpus": 100})
    with pytest.raises(Conflict, match="'fedora'"):
        quotas.check(tree["fedora-vms"], vcpus=2)
    # the root limits everyone
    quotas.set(tree["root"], {**ROOT_DEFAULT, "vms": 1})
    with pytest.raises(Conflict, match="quota of pool 'root' exceeded: VMs"):
        quotas.check(tree["redhat-vms"], vms=1)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"vcpus": -1}, "whole number"),
        ({"vcpus": "lots"}, "whole number"),
        ({"vcpus": True}, "whole number"),
        ({"vcpus": 10**13}, "at most"),
        ({"disks": 3}, "unknown quota fields"),
    ],
)
def test_bad_values(quotas, tree, values, message):
    with pytest.raises(InvalidInput, match=message):
        quotas.set(tree["fedora"], values)
    assert quotas.own(tree["fedora"]) is None


def test_root_must_set_every_limit(quotas, tree):
    with pytest.raises(InvalidInput, match="root pool's quota must set every limit"):
        quotas.set(tree["root"], {"vcpus": 1})


def test_empty_inherits(quotas, tree):
    quotas.set(tree["fedora"], {"vcpus": "8", "vms": ""})
    own = quotas.own(tree["fedora"])
    assert (own.vcpus, own.vms) == (8, None)
    new = PoolService(ServiceContext.for_session(quotas.dbsession)).create(
        "lab", PoolKind.VM, tree["fedora"]
    )
    assert limits(quotas, new)["vcpus"][:2] == (8, "fedora")
