"""Storage pages and API through the real app: servers, pools, volumes, replication; who
sees what; bad input refused with the reason and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import Host, StoragePool, StorageServer, StorageVolume, Task
from fedoracloud.services.context import ServiceContext

from ..conftest import login
from .conftest import (
    after_redirect,
    api_headers,
    assert_api_error,
    by_testid,
    flashes,
    grant,
    session_csrf,
    text_of,
)

IQN = "iqn.2009-01.org.fedoraproject:storage01.lun1"


def _counts(db: Any) -> tuple[int, int, int, int]:
    db.expire_all()
    return tuple(  # type: ignore[return-value]
        db.scalar(select(func.count()).select_from(m))
        for m in (StorageServer, StoragePool, StorageVolume, Task)
    )


def _post(app: Any, url: str, body: dict[str, Any], status: int | None = None) -> Any:
    return app.post_json(url, body, headers=api_headers(app), status=status, expect_errors=True)


@pytest.fixture
def seed_storage(dbsession, tree):
    """The seed's storage: master + secondary of 4 TB, an iSCSI pool on the master used by
    fedora, an LVM pool on its LUN 1, a directory pool used by redhat."""
    master = StorageServer(
        hostname="storage01.example.org",
        address="10.5.126.31",
        role="master",
        capacity_bytes=4 * 10**12,
    )
    secondary = StorageServer(
        hostname="storage02.example.org",
        address="10.5.126.32",
        role="secondary",
        capacity_bytes=4 * 10**12,
    )
    dbsession.add_all([master, secondary])
    dbsession.flush()
    master.replicates_to_id = secondary.id
    iscsi = StoragePool(
        name="master-iscsi",
        kind="iscsi",
        server_id=master.id,
        portal_address="10.5.126.31",
        port=3260,
        target_iqn=IQN,
        hardware_pools=[tree["fedora"]],
    )
    dbsession.add(iscsi)
    dbsession.flush()
    lvm = StoragePool(
        name="guests-lvm",
        kind="logical",
        volume_group="vg_guests",
        parent_pool_id=iscsi.id,
        lun=1,
        hardware_pools=[tree["fedora"]],
    )
    images = StoragePool(
        name="redhat-images",
        kind="dir",
        target_path="/var/lib/fedoracloud/images",
        hardware_pools=[tree["redhat"]],
    )
    dbsession.add_all([lvm, images])
    dbsession.flush()
    return {"master": master, "secondary": secondary, "iscsi": iscsi, "lvm": lvm, "dir": images}


def test_the_admin_defines_the_seeds_storage_through_the_api(admin_app, dbsession, tree):
    master = _post(
        admin_app,
        "/api/v1/storage-servers",
        {
            "hostname": "Storage01.cloud.fedoraproject.org",
            "address": "10.5.126.31",
            "role": "master",
            "capacity_gib": 3725,
        },
        201,
    ).json
    assert master["hostname"] == "storage01.cloud.fedoraproject.org"
    secondary = _post(
        admin_app,
        "/api/v1/storage-servers",
        {
            "hostname": "storage02.cloud.fedoraproject.org",
            "address": "10.5.126.32",
            "role": "secondary",
            "capacity_gib": 3725,
        },
        201,
    ).json
    answer = admin_app.patch_json(
        master["url"], {"replicates_to": secondary["id"]}, headers=api_headers(admin_app)
    )
    assert answer.json["replicates_to"] == secondary["id"]
    iscsi = _post(
        admin_app,
        "/api/v1/storage-pools",
        {
            "name": "master-lun1",
            "kind": "iscsi",
            "server": master["id"],
            "portal_address": "10.5.126.31",
            "target_iqn": IQN,
            "hardware_pools": [tree["fedora"].id],
        },
        201,
    ).json
    assert (iscsi["port"], iscsi["state"], iscsi["task"]["kind"]) == (
        3260,
        "defined",
        "storage.pool.define",
    )
    lvm = _post(
        admin_app,
        "/api/v1/storage-pools",
        {
            "name": "guests",
            "kind": "logical",
            "volume_group": "vg_guests",
            "parent_pool": iscsi["id"],
            "lun": 1,
            "hardware_pools": [tree["fedora"].id],
        },
        201,
    ).json
    assert lvm["parent_pool"] == iscsi["id"]
    refresh = _post(admin_app, f"/api/v1/storage-pools/{lvm['id']}/refresh", {}, 202)
    assert refresh.json["task"]["kind"] == "storage.pool.refresh"
    assert refresh.headers["Location"].endswith(f"/api/v1/tasks/{refresh.json['task']['id']}")
    pairs = admin_app.get("/api/v1/storage-replication").json["items"]
    assert [(p["master"], p["secondary"], p["status"]) for p in pairs] == [
        (master["id"], secondary["id"], "unknown")
    ]
    names = [p["name"] for p in admin_app.get("/api/v1/storage-pools").json["items"]]
    assert names == ["guests", "master-lun1"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (
            {"kind": "iscsi", "portal_address": "10.0.0.1", "target_iqn": "iqn.2009-13.org.x:y"},
            400,
            "iqn.YYYY-MM",
        ),
        (
            {"kind": "iscsi", "portal_address": "10.0.0.1", "target_iqn": "storage01"},
            400,
            "invalid target IQN",
        ),
        (
            {"kind": "iscsi", "portal_address": "10.0.0.300", "target_iqn": IQN},
            400,
            "an IP address or a host name",
        ),
        (
            {"kind": "iscsi", "portal_address": "10.0.0.1", "target_iqn": IQN, "port": 0},
            400,
            "1 to 65535",
        ),
        (
            {"kind": "iscsi", "portal_address": "10.0.0.1", "target_iqn": IQN, "lun": 99999},
            400,
            "0 to 16383",
        ),
        ({"kind": "iscsi", "target_iqn": IQN}, 400, "needs portal_address"),
        ({"kind": "dir", "target_path": "/var/../etc"}, 400, "without '..'"),
        ({"kind": "dir", "target_path": "/x", "target_iqn": IQN}, 400, "has no target_iqn"),
        (
            {
                "kind": "netfs",
                "portal_address": "nfs01",
                "source_path": "export",
                "target_path": "/mnt",
            },
            400,
            "absolute path",
        ),
        ({"kind": "logical", "volume_group": "vg"}, 400, "on an iSCSI LUN"),
        (
            {"kind": "logical", "volume_group": "-vg", "source_path": "/dev/sdb"},
            400,
            "invalid volume group",
        ),
        ({"kind": "zfs"}, 400, "kind: one of"),
        ({"kind": "dir", "target_path": "/x", "hardware_pools": []}, 400, "hardware_pools"),
        ({"kind": "dir", "target_path": "/x", "hardware_pools": [999999]}, 400, "no hardware pool"),
        (
            {"kind": "dir", "target_path": "/x", "name": "bad name"},
            400,
            "invalid storage pool name",
        ),
        ({"kind": "dir", "target_path": "/x", "name": "redhat-images"}, 409, "already named"),
        ({"kind": "dir", "target_path": "/x", "colour": "red"}, 400, "unknown fields: colour"),
    ],
)
def test_bad_storage_pools_are_refused_with_the_reason(
    admin_app, dbsession, tree, seed_storage, body, status, message
):
    full = {"name": "new-pool", "hardware_pools": [tree["fedora"].id], **body}
    before = _counts(dbsession)
    answer = _post(admin_app, "/api/v1/storage-pools", full)
    assert_api_error(answer, status, "invalid" if status == 400 else "conflict", message)
    assert _counts(dbsession) == before


@pytest.mark.parametrize(
    "body, message",
    [
        ({"hostname": "bad host", "address": "10.0.0.9"}, "a DNS name"),
        ({"hostname": "s3.example.org", "address": "nowhere"}, "IP address"),
        (
            {"hostname": "s3.example.org", "address": "10.0.0.9", "role": "primary"},
            "master or secondary",
        ),
        (
            {"hostname": "s3.example.org", "address": "10.0.0.9", "capacity_gib": 0},
            "capacity_gib: 1 to",
        ),
        (
            {"hostname": "s3.example.org", "address": "10.0.0.9", "replicates_to": "master"},
            "whole number",
        ),
    ],
)
def test_bad_storage_servers_are_refused(admin_app, dbsession, seed_storage, body, message):
    before = _counts(dbsession)
    assert_api_error(_post(admin_app, "/api/v1/storage-servers", body), 400, "invalid", message)
    assert _counts(dbsession) == before


def test_replication_links_a_master_to_one_secondary(admin_app, dbsession, seed_storage):
    s = seed_storage
    third = _post(
        admin_app,
        "/api/v1/storage-servers",
        {
            "hostname": "storage03.example.org",
            "address": "10.5.126.33",
            "role": "master",
        },
        201,
    ).json
    url = third["url"]
    for body, status, message in [
        ({"replicates_to": s["master"].id}, 400, "a master replicates to a secondary"),
        ({"replicates_to": third["id"]}, 400, "cannot replicate to itself"),
        ({"replicates_to": s["secondary"].id}, 409, "already replicates to storage02"),
        ({"replicates_to": 999999}, 400, "no storage server 999999"),
    ]:
        answer = admin_app.patch_json(url, body, headers=api_headers(admin_app), expect_errors=True)
        assert_api_error(answer, status, "invalid" if status == 400 else "conflict", message)
    answer = admin_app.patch_json(
        f"/api/v1/storage-servers/{s['secondary'].id}",
        {"role": "master"},
        headers=api_headers(admin_app),
        expect_errors=True,
    )
    assert_api_error(answer, 409, "conflict", "storage01.example.org replicates to this server")
    answer = admin_app.delete(
        f"/api/v1/storage-servers/{s['master'].id}",
        headers=api_headers(admin_app),
        expect_errors=True,
    )
    assert_api_error(answer, 409, "conflict", "storage pools live on storage01")


def test_volumes_are_asked_for_as_tasks_and_refused_where_they_cannot_be_made(
    admin_app, dbsession, seed_storage
):
    s = seed_storage
    made = _post(
        admin_app,
        f"/api/v1/storage-pools/{s['dir'].id}/volumes",
        {"name": "web01.img", "size_gib": 10},
        202,
    )
    assert made.json["task"]["args"] == {"name": "web01.img", "size_gib": 10, "format": "raw"}
    before = _counts(dbsession)
    for pool, body, message in [
        (s["iscsi"], {"name": "x", "size_gib": 1}, "made on the storage server"),
        (s["dir"], {"name": "../x", "size_gib": 1}, "invalid volume name"),
        (s["dir"], {"name": "x", "size_gib": 0}, "size_gib: 1 to 65536"),
        (s["dir"], {"name": "x", "size_gib": 1, "format": "vmdk"}, "format: raw or qcow2"),
        (s["lvm"], {"name": "x", "size_gib": 1, "format": "qcow2"}, "format: raw"),
    ]:
        answer = _post(admin_app, f"/api/v1/storage-pools/{pool.id}/volumes", body)
        assert_api_error(answer, 400, "invalid", message)
    assert _counts(dbsession) == before
    volume = StorageVolume(
        storage_pool_id=s["dir"].id,
        name="old.img",
        capacity_bytes=2 * 2**30,
        path="/var/lib/fedoracloud/images/old.img",
    )
    dbsession.add(volume)
    dbsession.flush()
    url = f"/api/v1/storage-pools/{s['dir'].id}/volumes/{volume.id}"
    shrink = admin_app.patch_json(
        url, {"size_gib": 1}, headers=api_headers(admin_app), expect_errors=True
    )
    assert_api_error(shrink, 400, "invalid", "shrinking it would lose data")
    grow = admin_app.patch_json(url, {"size_gib": 4}, headers=api_headers(admin_app), status=202)
    assert grow.json["task"]["kind"] == "storage.volume.resize"
    gone = admin_app.delete(url, headers=api_headers(admin_app), status=202)
    assert gone.json["task"]["kind"] == "storage.volume.delete"
    other = f"/api/v1/storage-pools/{s['iscsi'].id}/volumes/{volume.id}"
    admin_app.get(other, status=404)


def test_a_hardware_pool_admin_sees_only_the_storage_her_pool_uses(
    testapp, dbsession, tree, seed_storage
):
    s = seed_storage
    grant(dbsession, "alice", tree["fedora"], "admin")
    app = login(testapp, "alice")
    pools = app.get("/api/v1/storage-pools").json
    assert [p["name"] for p in pools["items"]] == ["guests-lvm", "master-iscsi"]
    app.get(f"/api/v1/storage-pools/{s['dir'].id}", status=404)
    assert app.get("/api/v1/storage-servers").json == {"items": [], "next": None, "total": 0}
    app.get(f"/api/v1/storage-servers/{s['master'].id}", status=404)
    app.get(f"/storage/servers/{s['master'].id}", status=404)
    app.get("/storage/replication", status=404)
    assert app.get("/api/v1/storage-replication").json["items"] == []
    page = app.get("/storage")
    assert by_testid(page, "server-table") is None and by_testid(page, "storage-pool-form") is None
    assert len(page.html.find_all(attrs={"data-testid": "storage-pool-row"})) == 2
    pool_page = app.get(f"/storage/pools/{s['iscsi'].id}")
    assert by_testid(pool_page, "refresh-form") is not None
    assert by_testid(pool_page, "delete-form") is None
    assert_api_error(
        _post(app, f"/api/v1/storage-pools/{s['iscsi'].id}/define", {}), 403, "forbidden"
    )
    answer = _post(
        app,
        "/api/v1/storage-pools",
        {"name": "mine", "kind": "dir", "target_path": "/x", "hardware_pools": [tree["fedora"].id]},
    )
    assert_api_error(answer, 403, "forbidden")


def test_a_monitor_sees_no_storage(testapp, dbsession, tree, seed_storage):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    app = login(testapp, "alice")
    assert app.get("/api/v1/storage-pools").json["items"] == []
    app.get(f"/storage/pools/{seed_storage['iscsi'].id}", status=404)
    answer = _post(app, f"/api/v1/storage-pools/{seed_storage['iscsi'].id}/refresh", {})
    assert_api_error(answer, 404, "not_found")
    assert by_testid(app.get("/storage"), "empty-state") is not None


def test_the_pages_show_the_seeds_storage(admin_app, dbsession, seed_storage, tree):
    page = admin_app.get("/storage")
    assert by_testid(page, "nav-storage") is not None
    rows = [
        " ".join(r.get_text(" ").split())
        for r in page.html.find_all(attrs={"data-testid": "server-row"})
    ]
    assert rows[0].startswith(
        "storage01.example.org 10.5.126.31 master storage02.example.org 3.6 TiB never"
    )
    pool = admin_app.get(f"/storage/pools/{seed_storage['lvm'].id}")
    assert text_of(pool, "fact-volume-group") == "vg_guests on master-iscsi"
    assert text_of(pool, "fact-size") == "not refreshed yet"
    form = (
        pool.forms["volume-form"]
        if "volume-form" in pool.forms
        else pool.html.find(attrs={"data-testid": "volume-form"})
    )
    assert form is not None
    landed = after_redirect(
        admin_app.post(
            f"/storage/pools/{seed_storage['lvm'].id}/refresh",
            {"csrf_token": session_csrf(admin_app)},
        )
    )
    assert flashes(landed, "info")[0].startswith("Refreshing guests-lvm from libvirt (task ")
    task = admin_app.get("/tasks").html.find(attrs={"data-testid": "task-row"})
    cells = [" ".join(td.get_text(" ").split()) for td in task.find_all("td")]
    assert cells[1:3] == ["storage.pool.refresh", "storage pool guests-lvm"]
    link = task.find_all("td")[2].find("a")["href"]
    assert link.endswith(f"/storage/pools/{seed_storage['lvm'].id}")
    repl = admin_app.get("/storage/replication")
    assert "redundancy, not high availability" in text_of(repl, "explanation")
    assert text_of(repl, "pair-status") == "unknown"


def test_drift_between_master_and_secondary_is_warned(admin_app, dbsession, seed_storage):
    s = seed_storage
    s["master"].checked_at = s["secondary"].checked_at = s["master"].created_at
    s["secondary"].last_error = "no answer on 10.5.126.32:3260 (Connection refused)"
    secondary_pool = StoragePool(
        name="secondary-iscsi",
        kind="iscsi",
        server_id=s["secondary"].id,
        portal_address="10.5.126.32",
        port=3260,
        target_iqn="iqn.2009-01.org.fedoraproject:storage02.lun1",
        capacity_bytes=100 * 2**30,
    )
    dbsession.add(secondary_pool)
    s["iscsi"].capacity_bytes = 200 * 2**30
    dbsession.flush()
    dbsession.add_all(
        [
            StorageVolume(
                storage_pool_id=s["iscsi"].id, name="unit:0:0:1", capacity_bytes=100 * 2**30
            ),
            StorageVolume(
                storage_pool_id=s["iscsi"].id, name="unit:0:0:2", capacity_bytes=100 * 2**30
            ),
            StorageVolume(
                storage_pool_id=secondary_pool.id, name="unit:0:0:1", capacity_bytes=90 * 2**30
            ),
        ]
    )
    dbsession.flush()
    pair = admin_app.get("/api/v1/storage-replication").json["items"][0]
    assert pair["status"] == "drift"
    assert (pair["master_reachable"], pair["secondary_reachable"]) == (True, False)
    assert pair["only_on_master"] == ["unit:0:0:2"] and pair["size_differs"] == ["unit:0:0:1"]
    warnings = [
        " ".join(w.get_text(" ").split())
        for w in admin_app.get("/storage/replication").html.find_all(
            attrs={"data-testid": "drift-warning"}
        )
    ]
    assert warnings == [
        "storage02.example.org is unreachable: no answer on 10.5.126.32:3260 (Connection refused)",
        "storage02.example.org has 100.0 GiB in its pools, less than the 200.0 GiB of"
        " storage01.example.org: the mirror cannot hold a full copy",
        "volumes not on storage02.example.org: unit:0:0:2",
        "volumes of different sizes: unit:0:0:1",
    ]


def test_the_forms_add_a_server_and_a_pool_or_say_why_not(admin_app, dbsession, tree):
    assert by_testid(admin_app.get("/storage"), "storage-pool-form") is not None
    csrf = session_csrf(admin_app)
    landed = after_redirect(
        admin_app.post(
            "/storage/servers",
            {
                "csrf_token": csrf,
                "hostname": "storage01.example.org",
                "address": "10.5.126.31",
                "role": "master",
                "replicates_to": "",
                "capacity_gib": "3725",
            },
        )
    )
    assert flashes(landed, "success") == ["Storage server storage01.example.org added."]
    before = _counts(dbsession)
    refused = after_redirect(
        admin_app.post(
            "/storage/pools",
            {
                "csrf_token": csrf,
                "name": "lun1",
                "kind": "iscsi",
                "hardware_pools": str(tree["fedora"].id),
                "portal_address": "10.5.126.31",
                "target_iqn": "iqn.2009-01.org.fedoraproject:Storage01",
                "port": "",
                "lun": "",
            },
        )
    )
    assert "lower case" in flashes(refused, "danger")[0]
    assert _counts(dbsession) == before
    made = admin_app.post(
        "/storage/pools",
        [
            ("csrf_token", csrf),
            ("name", "images"),
            ("kind", "dir"),
            ("hardware_pools", str(tree["fedora"].id)),
            ("hardware_pools", str(tree["redhat"].id)),
            ("target_path", "/var/lib/fedoracloud/images"),
            ("portal_address", ""),
            ("volume_group", ""),
        ],
    )
    pool_page = after_redirect(made)
    assert flashes(pool_page, "success")[0].startswith(
        "Storage pool images added; defining it on the hosts (task "
    )
    assert text_of(pool_page, "fact-used-by") == "fedora, redhat"


def test_a_vm_asks_for_a_new_disk_in_a_storage_pool_of_its_hardware_pool(
    admin_app, dbsession, tree, seed_storage
):
    vm_pool = tree["fedora-vms"].id
    body = {"name": "web01", "pool": vm_pool, "vcpus": 1, "memory_mib": 512}
    made = _post(
        admin_app,
        "/api/v1/vms",
        {**body, "disks": [{"size_gib": 20, "storage_pool": seed_storage["lvm"].id}]},
        201,
    ).json
    assert [(d["size_gib"], d["volume"], d["path"]) for d in made["disks"]] == [(20, None, None)]
    assert made["task"]["kind"] == "vm.create"  # which makes the volume
    before = _counts(dbsession)
    for disks, message in [
        ([{"size_gib": 20, "storage_pool": seed_storage["iscsi"].id}], "is an iSCSI target"),
        ([{"size_gib": 20, "storage_pool": seed_storage["dir"].id}], "no storage pool of hardware"),
        ([{"size_gib": 0, "storage_pool": seed_storage["lvm"].id}], "disk size_gib: 1 to"),
    ]:
        answer = _post(admin_app, "/api/v1/vms", {**body, "name": "web02", "disks": disks})
        assert_api_error(answer, 400, "invalid", message)
    assert _counts(dbsession) == before


def _define_tasks(db: Any) -> list[tuple[str, int]]:
    db.expire_all()
    rows = db.scalars(select(Task).where(Task.kind == "storage.pool.define").order_by(Task.id))
    return [(t.target_type, t.target_id) for t in rows]


def test_a_host_approved_or_moved_into_a_hardware_pool_gets_its_storage(
    testapp, app, dbsession, tree, seed_storage
):
    from fedoracloud.node_agent import make_csr, make_key
    from fedoracloud.pki import CaSettings, CertificateAuthority
    from fedoracloud.services.enrollment import EnrollmentService
    from fedoracloud.services.hosts import HostService

    from ..factories import HostFactory
    from .test_enrollment import facts

    authority = CertificateAuthority(CaSettings.from_settings(app.registry["fc_settings"]))
    if not authority.exists():
        authority.init()
    enrollment = EnrollmentService(ServiceContext(dbsession, app.registry["fc_settings"]))
    issued = enrollment.issue_token(hostname="node7.cloud.example.org")
    node = facts("node7.cloud.example.org")
    testapp.extra_environ["REMOTE_ADDR"] = "10.1.77.7"
    testapp.post_json(
        "/api/v1/enroll",
        {"token": issued.token, "csr": make_csr(make_key(), node["hostname"]), "facts": node},
        status=202,
    )
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    assert _define_tasks(dbsession) == []
    enrollment.approve(host, tree["fedora"])
    fedora = sorted([seed_storage["lvm"].id, seed_storage["iscsi"].id])
    assert sorted(i for _t, i in _define_tasks(dbsession)) == fedora
    other = HostFactory(pool=tree["default"])
    HostService(ServiceContext.for_session(dbsession)).move(other, tree["redhat"])
    assert _define_tasks(dbsession)[-1] == ("storage_pool", seed_storage["dir"].id)
