"""The VM lifecycle service: the state machine table, creating VMs (and refusing bad input
without writing anything), placement, quotas on create and start, migration pre-checks."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import AuditEvent, Host, Network, Quota, Task, Vm, VmNic, VmState
from fedoracloud.services import Conflict, InvalidInput
from fedoracloud.services import networks as networks_module
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.vms import (
    ACTIONS,
    TRANSITIONS,
    VmService,
    VmSpec,
    allowed_actions,
    check_vm_name,
)

from ..factories import HostFactory, VmFactory

S = VmState

# fmt: off
#: the contract, spelled out a second time: state → {allowed action: state it enters}
EXPECTED: dict[VmState, dict[str, VmState]] = {
    S.PENDING:       {"delete": S.DELETING},
    S.CREATING:      {"poweroff": S.SHUTTING_DOWN},
    S.RUNNING:       {"shutdown": S.SHUTTING_DOWN, "poweroff": S.SHUTTING_DOWN,
                      "suspend": S.RUNNING, "save": S.SAVING, "reboot": S.RUNNING,
                      "migrate": S.MIGRATING},
    S.PAUSED:        {"resume": S.PAUSED, "poweroff": S.SHUTTING_DOWN, "save": S.SAVING,
                      "migrate": S.MIGRATING},
    S.SAVING:        {},
    S.SAVED:         {"restore": S.RESTORING, "delete": S.DELETING},
    S.RESTORING:     {},
    S.SHUTTING_DOWN: {"poweroff": S.SHUTTING_DOWN},
    S.STOPPED:       {"start": S.CREATING, "delete": S.DELETING},
    S.MIGRATING:     {},
    S.DELETING:      {},
    S.UNKNOWN:       {"poweroff": S.SHUTTING_DOWN, "delete": S.DELETING},
    S.FAILED:        {"start": S.CREATING, "poweroff": S.SHUTTING_DOWN, "delete": S.DELETING},
}
# fmt: on


@pytest.fixture
def fedora(dbsession: Any, tree: dict[str, Any]) -> dict[str, Any]:
    """Two available 8-CPU, 16 GiB hosts in fedora; a pending and a disabled one too."""
    hosts = [
        HostFactory(pool=tree["fedora"], hostname=f"node0{i}.fedora.example.org")
        for i in range(1, 3)
    ]
    HostFactory(pool=tree["fedora"], hostname="pending.fedora.example.org", state="pending")
    HostFactory(pool=tree["fedora"], hostname="off.fedora.example.org", state="disabled")
    other = HostFactory(pool=tree["redhat"], hostname="node09.redhat.example.org")
    return {**tree, "hosts": hosts, "other": other, "pool": tree["fedora-vms"]}


def _spec(pool: Any, **over: Any) -> dict[str, Any]:
    return {"name": "web01", "pool": pool.id, "vcpus": 2, "memory_mib": 2048, **over}


def _counts(dbsession: Any) -> tuple[int, int, int, int]:
    dbsession.flush()
    return tuple(  # type: ignore[return-value]
        dbsession.scalar(select(func.count()).select_from(model))
        for model in (Vm, VmNic, Task, AuditEvent)
    )


# -- the state machine ---------------------------------------------------------------------


def test_the_table_is_the_contract() -> None:
    assert set(TRANSITIONS) == set(VmState)
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize("state", list(VmState))
def test_every_state_and_action(dbsession: Any, fedora: dict[str, Any], state: VmState) -> None:
    """Every state x every action: accepted (transitional state, a task) or 409 with the
    reason, leaving the VM as it was."""
    source, destination = fedora["hosts"]
    service = VmService(ServiceContext.for_session(dbsession))
    for action in ACTIONS:
        vm = VmFactory(pool=fedora["pool"], host=source, state=state.value)
        args = {"host": destination.id} if action == "migrate" else {}
        if action in EXPECTED[state]:
            task = service.request(vm, action, args)
            assert vm.state == EXPECTED[state][action].value, (state, action)
            assert (task.kind, task.target_type, task.target_id) == (f"vm.{action}", "vm", vm.id)
        else:
            with pytest.raises(Conflict) as refused:
                service.request(vm, action, args)
            label = state.value.replace("_", " ")
            assert refused.value.message.startswith(f"cannot {action} a VM that is {label}")
            assert refused.value.status == 409
            assert vm.state == state.value
            assert dbsession.scalar(select(Task).where(Task.target_id == vm.id)) is None
        assert (action in allowed_actions(vm)) == (action in EXPECTED[VmState(vm.state)])


def test_a_refusal_says_what_to_do(dbsession: Any, fedora: dict[str, Any]) -> None:
    vm = VmFactory(pool=fedora["pool"], host=fedora["hosts"][0], state="running")
    with pytest.raises(Conflict, match="cannot delete a VM that is running; power it off first"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "delete")
    vm.state = "stopped"
    with pytest.raises(Conflict, match="cannot suspend a VM that is stopped"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "suspend")
    with pytest.raises(InvalidInput, match="unknown VM action 'explode'"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "explode")


def test_an_unmanaged_vm_is_never_deleted(dbsession: Any, fedora: dict[str, Any]) -> None:
    vm = VmFactory(pool=fedora["pool"], host=fedora["hosts"][0], state="stopped", managed=False)
    assert "delete" not in allowed_actions(vm)
    with pytest.raises(Conflict, match="does not delete domains it does not manage"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "delete")


# -- creating ------------------------------------------------------------------------------


def test_create_writes_the_vm_its_nics_and_one_task(dbsession: Any, fedora: dict[str, Any]) -> None:
    network = Network(name="guests", bridge="br0", cidr="10.0.0.0/24", usage="guest")
    dbsession.add(network)
    dbsession.flush()
    spec = VmSpec.parse(
        _spec(
            fedora["pool"],
            nics=[{"network": network.id}, {"network": network.id}],
            boot={"order": ["network", "hd"]},
        )
    )
    vm, task = VmService(ServiceContext.for_session(dbsession)).create(spec)
    assert (vm.name, vm.state, vm.host_id, vm.boot_order) == (
        "web01",
        "pending",
        None,
        "network,hd",
    )
    macs = [nic.mac for nic in vm.nics]
    assert len(set(macs)) == 2 and all(m.startswith("52:54:00:") for m in macs)
    assert (task.kind, task.target_id, task.state) == ("vm.create", vm.id, "queued")


def test_a_mac_clash_draws_again(
    dbsession: Any, fedora: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    network = Network(name="guests", bridge="br0", cidr="10.0.0.0/24", usage="guest")
    dbsession.add(network)
    taken = VmFactory(pool=fedora["pool"])
    dbsession.flush()
    dbsession.add(VmNic(vm_id=taken.id, mac="52:54:00:00:00:01", network_id=network.id))
    draws = iter(["52:54:00:00:00:01", "52:54:00:00:00:02"])
    monkeypatch.setattr(networks_module, "random_mac", lambda: next(draws))
    vm, _ = VmService(ServiceContext.for_session(dbsession)).create(
        VmSpec.parse(_spec(fedora["pool"], nics=[{"network": network.id}]))
    )
    assert [n.mac for n in vm.nics] == ["52:54:00:00:00:02"]


@pytest.mark.parametrize(
    "name",
    [
        "<script>",
        "a&b",
        'quote"d',
        "it's",
        "a/b",
        "..",
        "a\\b",
        "x" * 300,
        "",
        "-leading",
        "sp ace",
    ],
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_vm_name(name)
    assert refused.value.details == {"field": "name"}
    if len(name) == 300:
        assert "at most 64 characters (this one has 300)" in refused.value.message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "web<01>"}, "may hold only letters, digits"),
        ({"name": "x" * 300}, "at most 64 characters"),
        ({"memory_mib": 0}, "memory_mib: more than 0"),
        ({"memory_mib": 10 * 1024 * 1024}, "memory_mib: at most 1048576 (1024 GiB)"),
        ({"vcpus": 0}, "vcpus: at least 1"),
        ({"vcpus": "many"}, "vcpus must be a whole number"),
        ({"vcpus": 9}, "vcpus: 9 is more than the largest host of hardware pool 'fedora'"),
        ({"memory_mib": 32768}, "32768 MiB is more than the largest host"),
        ({"colour": "red"}, "unknown fields: colour"),
        ({"boot": {"kernel": "/boot/../etc/shadow"}}, "absolute path without '..'"),
        ({"disks": [{"size_gib": 10}]}, "no storage pool of hardware pool 'fedora'"),
        ({"nics": [{"network": 999999}]}, "no guest network 999999"),
    ],
)
def test_bad_input_writes_nothing(
    dbsession: Any, fedora: dict[str, Any], override: dict[str, Any], message: str
) -> None:
    before = _counts(dbsession)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], **override))
        )
    assert _counts(dbsession) == before


def test_vcpus_beyond_the_chosen_host(dbsession: Any, fedora: dict[str, Any]) -> None:
    small = fedora["hosts"][0]
    small.cpu_count = 2
    with pytest.raises(InvalidInput, match=f"vcpus: 4 is more than host {small.hostname} has"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], vcpus=4, host=small.id))
        )


def test_a_duplicate_name_in_the_pool_is_a_conflict(dbsession: Any, fedora: dict[str, Any]) -> None:
    VmService(ServiceContext.for_session(dbsession)).create(VmSpec.parse(_spec(fedora["pool"])))
    before = _counts(dbsession)
    with pytest.raises(Conflict, match="pool 'fedora-vms' already has a VM named 'web01'"):
        VmService(ServiceContext.for_session(dbsession)).create(VmSpec.parse(_spec(fedora["pool"])))
    assert _counts(dbsession) == before


def test_a_host_of_another_hardware_pool_is_refused(dbsession: Any, fedora: dict[str, Any]) -> None:
    before = _counts(dbsession)
    with pytest.raises(InvalidInput, match="in hardware pool 'fedora'"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], host=fedora["other"].id))
        )
    pending = dbsession.scalar(select(Host).where(Host.state == "pending"))
    with pytest.raises(Conflict, match="is pending; VMs go only on available hosts"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], host=pending.id))
        )
    assert _counts(dbsession) == before


def test_a_hardware_pool_is_not_a_vm_pool(dbsession: Any, fedora: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="VMs live in VM pools; 'fedora' is a hardware pool"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["fedora"]))
        )


# -- quotas --------------------------------------------------------------------------------


def test_quota_on_create(dbsession: Any, fedora: dict[str, Any]) -> None:
    dbsession.add(Quota(pool_id=fedora["fedora"].id, vcpus=3))
    VmService(ServiceContext.for_session(dbsession)).create(
        VmSpec.parse(_spec(fedora["pool"], name="a"))
    )
    before = _counts(dbsession)
    with pytest.raises(Conflict, match="quota of pool 'fedora' exceeded: vCPUs would be 4"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], name="b"))
        )
    assert _counts(dbsession) == before


def test_quota_on_start(dbsession: Any, fedora: dict[str, Any]) -> None:
    vm = VmFactory(pool=fedora["pool"], state="stopped", vcpus=2)
    dbsession.add(Quota(pool_id=fedora["pool"].id, vcpus=1))  # lowered after the VM was made
    with pytest.raises(Conflict, match="quota of pool 'fedora-vms' exceeded: vcpus used 2"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "start")
    assert vm.state == "stopped"


# -- placement -----------------------------------------------------------------------------


def test_start_places_on_the_least_loaded_available_host(
    dbsession: Any, fedora: dict[str, Any]
) -> None:
    first, second = fedora["hosts"]
    VmFactory(pool=fedora["pool"], host=first, state="running", memory_mib=4096)
    vm = VmFactory(pool=fedora["pool"], state="stopped", memory_mib=2048)
    task = VmService(ServiceContext.for_session(dbsession)).request(vm, "start")
    assert vm.host_id == second.id and task.args["host"] == second.id
    assert vm.state == "creating"


def test_a_vm_starts_where_it_is_defined_if_it_fits(dbsession: Any, fedora: dict[str, Any]) -> None:
    first, _second = fedora["hosts"]
    VmFactory(pool=fedora["pool"], host=first, state="running", memory_mib=4096)
    vm = VmFactory(pool=fedora["pool"], host=first, state="stopped", memory_mib=2048)
    VmService(ServiceContext.for_session(dbsession)).request(vm, "start")
    assert vm.host_id == first.id


def test_placement_explains_a_refusal(dbsession: Any, fedora: dict[str, Any]) -> None:
    first, second = fedora["hosts"]
    first.free_memory_mib = 4096
    second.free_memory_mib = 6144
    vm = VmFactory(pool=fedora["pool"], state="stopped", memory_mib=8192)
    with pytest.raises(
        Conflict, match="no host in pool fedora has 8 GiB free; largest free: 6 GiB"
    ):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "start")
    assert (vm.state, vm.host_id) == ("stopped", None)
    vm.memory_mib, vm.vcpus = 1024, 16
    with pytest.raises(Conflict, match="no host in pool fedora has 16 CPUs; largest: 8"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "start")


def test_placement_counts_starts_libvirt_has_not_reported(
    dbsession: Any, fedora: dict[str, Any]
) -> None:
    for host in fedora["hosts"]:
        host.free_memory_mib = 16384
    service = VmService(ServiceContext.for_session(dbsession))
    placed = []
    for i in range(4):
        vm = VmFactory(pool=fedora["pool"], state="stopped", memory_mib=6144, name=f"big{i}")
        service.request(vm, "start")
        placed.append(vm.host_id)
    first, second = (h.id for h in fedora["hosts"])
    assert sorted(placed) == sorted([first, first, second, second])
    fifth = VmFactory(pool=fedora["pool"], state="stopped", memory_mib=6144)
    with pytest.raises(Conflict, match="largest free: 4 GiB"):
        service.request(fifth, "start")


def test_never_on_a_disabled_pending_or_foreign_host(
    dbsession: Any, fedora: dict[str, Any]
) -> None:
    for host in fedora["hosts"]:
        host.state = "maintenance"
    vm = VmFactory(pool=fedora["pool"], state="stopped")
    with pytest.raises(Conflict, match="no available host in pool fedora"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "start")


def test_placement_matches_the_arch(dbsession: Any, fedora: dict[str, Any]) -> None:
    for host in fedora["hosts"]:
        host.arch = "aarch64"
    vm = VmFactory(pool=fedora["pool"], state="stopped")
    with pytest.raises(Conflict, match="no host in pool fedora is x86_64"):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "start")


# -- migration pre-checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("same", InvalidInput, "already runs on node01.fedora.example.org; pick another host"),
        ("other", InvalidInput, "VMs migrate only between hosts of their hardware pool"),
        ("none", InvalidInput, "migrate needs a destination host"),
        ("pending", Conflict, "is pending"),
        ("full", Conflict, "has 1 GiB free; mig needs 2 GiB"),
        ("arm", Conflict, "is aarch64, node01.fedora.example.org is x86_64"),
    ],
)
def test_migration_prechecks(
    dbsession: Any, fedora: dict[str, Any], target: str, error: type, message: str
) -> None:
    source, destination = fedora["hosts"]
    vm = VmFactory(pool=fedora["pool"], host=source, state="running", name="mig")
    host_id: Any = destination.id
    if target == "same":
        host_id = source.id
    elif target == "other":
        host_id = fedora["other"].id
    elif target == "none":
        host_id = None
    elif target == "pending":
        host_id = dbsession.scalar(select(Host.id).where(Host.state == "pending"))
    elif target == "full":
        destination.free_memory_mib = 1024
    elif target == "arm":
        destination.arch = "aarch64"
    before = _counts(dbsession)
    with pytest.raises(error, match=message):
        VmService(ServiceContext.for_session(dbsession)).request(vm, "migrate", {"host": host_id})
    assert (vm.state, vm.host_id) == ("running", source.id)
    assert _counts(dbsession) == before


def test_a_new_volume_is_left_to_the_create_task(dbsession: Any, fedora: dict[str, Any]) -> None:
    from fedoracloud.models import StoragePool

    storage = StoragePool(name="fedora-nfs", kind="netfs", hardware_pools=[fedora["fedora"]])
    dbsession.add(storage)
    vm, task = VmService(ServiceContext.for_session(dbsession)).create(
        VmSpec.parse(_spec(fedora["pool"], disks=[{"size_gib": 10}]))
    )
    assert [(d.storage_pool_id, d.size_gib, d.path, d.volume_id) for d in vm.disks] == [
        (storage.id, 10, None, None)
    ]
    assert task.kind == "vm.create"


def test_a_new_volume_is_refused_on_an_iscsi_target(dbsession: Any, fedora: dict[str, Any]) -> None:
    from fedoracloud.models import StoragePool

    storage = StoragePool(name="fedora-lun", kind="iscsi", hardware_pools=[fedora["fedora"]])
    dbsession.add(storage)
    dbsession.flush()
    before = _counts(dbsession)
    disks = [{"size_gib": 10, "storage_pool": storage.id}]
    with pytest.raises(InvalidInput, match="'fedora-lun' is an iSCSI target"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], disks=disks))
        )
    assert _counts(dbsession) == before


def test_an_existing_volume_becomes_the_boot_disk(dbsession: Any, fedora: dict[str, Any]) -> None:
    from fedoracloud.models import StoragePool, StorageVolume

    storage = StoragePool(name="fedora-iscsi", kind="iscsi", hardware_pools=[fedora["fedora"]])
    dbsession.add(storage)
    dbsession.flush()
    volume = StorageVolume(
        storage_pool_id=storage.id, name="lun1", path="/dev/disk/by-path/lun1", capacity_bytes=2**34
    )
    dbsession.add(volume)
    dbsession.flush()
    vm, _ = VmService(ServiceContext.for_session(dbsession)).create(
        VmSpec.parse(_spec(fedora["pool"], disks=[{"volume": volume.id}]))
    )
    assert [(d.target_dev, d.path, d.size_gib, d.boot_order) for d in vm.disks] == [
        ("vda", "/dev/disk/by-path/lun1", 16, 1)
    ]
    with pytest.raises(Conflict, match="volume lun1 is already a disk of a VM"):
        VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(_spec(fedora["pool"], name="web02", disks=[{"volume": volume.id}]))
        )
