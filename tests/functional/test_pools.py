"""The pool pages: the tree, a pool's page, and its create / rename / move / delete forms."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from fedoracloud.models import AuditEvent, PoolKind
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService

from ..conftest import csrf_token
from ..factories import HostFactory, PoolFactory, VmFactory
from .conftest import (
    after_redirect,
    by_testid,
    each,
    flashes,
    location_path,
    pool_named,
    session_csrf,
    snapshot,
    text_of,
    tree_names,
)


def post_form(app, url, expect_errors=False, **fields):
    """POST a pool form the way the page does (with the session's CSRF token)."""
    return app.post(url, {"csrf_token": session_csrf(app), **fields}, expect_errors=expect_errors)


def refused_inline(response, status=400):
    """A refused create form comes back on the pool page with the reason above the form."""
    assert response.status_int == status, response.status
    return text_of(response, "pool-create-error")


def counts(page, name):
    """The host and VM counts shown next to a pool in the tree."""
    node = by_testid(page, f"pool-{name}")
    return [s.get_text(strip=True) for s in node.find_all("span", class_="fc-count", limit=2)]


# -- GET / and GET /pools -----------------------------------------------------------------------


def test_front_page_redirects_to_the_pools(admin_app):
    assert location_path(admin_app.get("/", status=303)) == "/pools"


def test_tree_shows_every_pool_with_subtree_counts(admin_app, tree):
    HostFactory(pool=tree["fedora"])
    host = HostFactory(pool=tree["fedora"])
    HostFactory(pool=tree["redhat"])
    VmFactory(pool=tree["fedora-vms"], host=host)
    page = admin_app.get("/pools")
    assert tree_names(page) == [
        "root",
        "hardware",
        "default",
        "fedora",
        "fedora-vms",
        "redhat",
        "redhat-vms",
        "users",
    ]
    assert counts(page, "fedora") == ["2 hosts", "1 VM"]
    assert counts(page, "fedora-vms") == ["1 VM"]  # a VM pool owns no hosts
    assert counts(page, "redhat") == ["1 host", "0 VMs"]
    assert counts(page, "hardware") == ["3 hosts", "1 VM"]
    assert counts(page, "root") == ["3 hosts", "1 VM"]
    assert counts(page, "users") == ["0 hosts", "0 VMs"]
    link = by_testid(page, "pool-redhat").find("a")
    assert link["href"] == f"http://example.com/pools/{tree['redhat'].id}"
    assert text_of(page, "current-user") == "admin (super admin)"


def test_tree_for_a_user_without_grants_is_an_empty_state(alice_app):
    page = alice_app.get("/pools")
    assert by_testid(page, "pool-tree") is None
    assert "No pools to show" in text_of(page, "empty-state")
    assert "You have no role on any pool yet" in text_of(page, "empty-state")


# -- GET /pools/{id} ----------------------------------------------------------------------------


def test_pool_page_shows_breadcrumb_sub_pools_hosts_and_vms(admin_app, tree):
    host = HostFactory(pool=tree["fedora"], hostname="kvm01.fedora.example.org")
    VmFactory(pool=tree["fedora-vms"], host=host, name="builder01")
    page = admin_app.get(f"/pools/{tree['fedora'].id}")
    assert text_of(page, "pool-name") == "fedora hardware pool"
    crumbs = [a.get_text(strip=True) for a in page.html.select(".pf-v5-c-breadcrumb__link")]
    assert crumbs == ["Pools", "root", "hardware", "fedora"]
    assert "fedora-vms" in text_of(page, "children")
    assert "kvm01.fedora.example.org" in text_of(page, "hosts")
    assert "Hosts (1)" in page.text
    vms = text_of(page, "vms")
    assert "builder01" in vms
    assert "kvm01.fedora.example.org" in vms
    # a super admin gets every form
    for form in ("create-form", "rename-form", "move-form", "delete-form"):
        assert by_testid(page, form) is not None, form


def test_pool_page_of_an_empty_pool(admin_app, tree):
    page = admin_app.get(f"/pools/{tree['redhat-vms'].id}")
    assert "No sub-pools." in page.text
    # a VM pool owns no hosts: its VMs run on its hardware pool's
    assert "run on the hosts of its hardware pool, redhat" in text_of(page, "runs-on")
    assert "No VMs." in page.text
    # nothing can be created inside a VM pool, so no create form
    assert by_testid(page, "create-form") is None


def test_root_pool_page_has_no_rename_move_or_delete(admin_app, tree):
    page = admin_app.get(f"/pools/{tree['root'].id}")
    assert by_testid(page, "create-form") is not None
    for form in ("rename-form", "move-form", "delete-form"):
        assert by_testid(page, form) is None, form


def test_move_form_offers_no_pool_inside_the_pool_itself(admin_app, tree):
    page = admin_app.get(f"/pools/{tree['fedora'].id}")
    options = [o.get_text(strip=True) for o in by_testid(page, "move-form").find_all("option")]
    assert not any("fedora" in o for o in options)
    assert any(o.endswith("redhat (hardware)") for o in options)
    assert not any("(vm)" in o for o in options)


def test_pool_page_links_to_the_full_host_list_when_there_are_many(admin_app, tree):
    for _ in range(51):
        HostFactory(pool=tree["redhat"])
    page = admin_app.get(f"/pools/{tree['redhat'].id}")
    assert "Hosts (51)" in page.text
    assert len(by_testid(page, "hosts").find_all("tr")) == 1 + 50
    link = page.html.find("a", string="All 51 hosts in redhat")
    assert link["href"] == f"http://example.com/hosts?pool={tree['redhat'].id}"


def test_description_is_escaped(admin_app, tree, dbsession):
    pool = PoolService(ServiceContext.for_session(dbsession)).create(
        "xss", PoolKind.HARDWARE, tree["fedora"], "<script>alert(1)</script>"
    )
    page = admin_app.get(f"/pools/{pool.id}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in admin_app.get(f"/pools/{tree['fedora'].id}").text


def test_unknown_or_malformed_pool_id_is_404(admin_app):
    def check(path):
        page = admin_app.get(path, status=404)
        assert "Not found" in page.text
        assert "There is nothing here" in text_of(page, "error-message")

    each(["/pools/999999", "/pools/abc", "/pools/-1", "/pools/1.0"], check)


def test_overlong_pool_id_is_404(admin_app):
    admin_app.get("/pools/" + "9" * 40, status=404)
    admin_app.post("/pools/" + "9" * 19 + "/rename", {"name": "x"}, status=404)


def test_pool_forms_answer_only_post(admin_app, tree):
    def check(action):
        admin_app.get(f"/pools/{tree['fedora'].id}/{action}", status=404)

    each(["children", "rename", "move", "delete"], check)


# -- POST /pools/{id}/children ------------------------------------------------------------------


def test_create_sub_pool_through_the_form(admin_app, tree, dbsession):
    page = admin_app.get(f"/pools/{tree['fedora'].id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/children"))
    form["name"] = "rack-2"
    form["kind"] = "hardware"
    form["description"] = "the second rack"
    response = form.submit(status=303)
    pool = pool_named(dbsession, "rack-2")
    assert pool is not None
    assert pool.parent_id == tree["fedora"].id
    assert pool.kind == "hardware"
    assert pool.description == "the second rack"
    assert location_path(response) == f"/pools/{pool.id}"
    landed = response.follow()
    assert flashes(landed, "success") == ["Pool rack-2 created."]
    assert text_of(landed, "pool-name") == "rack-2 hardware pool"
    # the flash is shown once
    assert flashes(admin_app.get(f"/pools/{pool.id}"), "success") == []
    event = dbsession.scalars(select(AuditEvent).where(AuditEvent.action == "pool.create")).all()
    assert event[-1].username == "admin"
    assert event[-1].target_id == pool.id


def test_create_vm_pool_inside_a_hardware_pool(admin_app, tree, dbsession):
    response = post_form(admin_app, f"/pools/{tree['redhat'].id}/children", name="ci", kind="vm")
    assert flashes(after_redirect(response), "success") == ["Pool ci created."]
    assert pool_named(dbsession, "ci").kind == "vm"


BAD_NAMES = [
    ("", "a pool needs a name"),
    ("   ", "a pool needs a name"),
    ("x" * 65, "a pool name has at most 64 characters"),
    ("<script>", "a pool name starts with a letter or digit"),
    ("a/b", "only letters, digits"),
    ("two words", "only letters, digits"),
    ("quote'd", "only letters, digits"),
    ('double"quote', "only letters, digits"),
    ("-dash-first", "starts with a letter or digit"),
    (".hidden", "starts with a letter or digit"),
    ("tab\there", "only letters, digits"),
    ("émile", "starts with a letter or digit"),
]


def test_create_with_a_bad_name_flashes_why_and_writes_nothing(admin_app, tree, dbsession):
    def check(name, message):
        before = snapshot(dbsession)
        response = post_form(
            admin_app,
            f"/pools/{tree['fedora'].id}/children",
            name=name,
            kind="hardware",
            expect_errors=True,
        )
        assert message in refused_inline(response)
        # what was typed is still in the field
        typed = by_testid(response, "create-form").find("input", id="new-name")["value"]
        assert typed == name[:2000]
        assert snapshot(dbsession) == before

    each(BAD_NAMES, check)


def test_create_name_of_64_characters_is_fine(admin_app, tree, dbsession):
    name = "n" * 64
    response = post_form(
        admin_app, f"/pools/{tree['fedora'].id}/children", name=name, kind="hardware"
    )
    assert flashes(after_redirect(response), "success") == [f"Pool {name} created."]


def test_create_duplicate_sibling_flashes_and_writes_nothing(admin_app, tree, dbsession):
    before = snapshot(dbsession)
    response = post_form(
        admin_app,
        f"/pools/{tree['hardware'].id}/children",
        name="fedora",
        kind="hardware",
        expect_errors=True,
    )
    assert refused_inline(response, 409) == "a pool named 'fedora' already exists in 'hardware'"
    assert snapshot(dbsession) == before


def test_same_name_in_another_parent_is_fine(admin_app, tree, dbsession):
    response = post_form(
        admin_app, f"/pools/{tree['redhat'].id}/children", name="fedora-vms", kind="vm"
    )
    assert flashes(after_redirect(response), "success") == ["Pool fedora-vms created."]


def test_create_in_the_wrong_place_flashes_why(admin_app, tree, dbsession):
    def check(parent, kind, message):
        before = snapshot(dbsession)
        response = post_form(
            admin_app,
            f"/pools/{tree[parent].id}/children",
            name="new",
            kind=kind,
            expect_errors=True,
        )
        assert message in refused_inline(response, response.status_int)
        assert response.status_int in (400, 403, 409)
        assert snapshot(dbsession) == before

    each(
        [
            ("users", "vm", "a VM pool must be inside a hardware pool"),
            ("root", "vm", "a VM pool must be inside a hardware pool"),
            ("fedora-vms", "vm", "a VM pool must be inside a hardware pool"),
            (
                "fedora-vms",
                "hardware",
                "a hardware pool must be inside a directory or hardware pool",
            ),
            ("fedora", "directory", "a directory pool must be inside a directory pool"),
            ("fedora", "smart", "a smart pool must be inside a directory pool"),
            ("fedora", "bogus", "unknown pool kind 'bogus'"),
            ("fedora", "", "unknown pool kind ''"),
        ],
        check,
    )


def test_create_with_an_overlong_description_is_refused(admin_app, tree, dbsession):
    before = snapshot(dbsession)
    response = post_form(
        admin_app,
        f"/pools/{tree['fedora'].id}/children",
        name="new",
        kind="hardware",
        description="d" * 2001,
        expect_errors=True,
    )
    assert refused_inline(response) == "a description has at most 2000 characters"
    assert snapshot(dbsession) == before


# -- CSRF on every pool form --------------------------------------------------------------------


def test_pool_forms_without_the_csrf_token_are_refused(admin_app, tree, dbsession):
    def check(token, action):
        before = snapshot(dbsession)
        fields = {"name": "renamed", "kind": "hardware", "parent": str(tree["redhat"].id)}
        if token is not None:
            fields["csrf_token"] = token
        page = admin_app.post(f"/pools/{tree['fedora-vms'].id}/{action}", fields, status=400)
        assert "The form was stale or did not come from this site" in text_of(page, "error-message")
        assert snapshot(dbsession) == before

    each(
        itertools.product([None, "", "not-the-token"], ["children", "rename", "move", "delete"]),
        check,
    )


# -- POST /pools/{id}/rename --------------------------------------------------------------------


def test_rename_through_the_form(admin_app, tree, dbsession):
    page = admin_app.get(f"/pools/{tree['redhat'].id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/rename"))
    assert form["name"].value == "redhat"
    form["name"] = "rhel"
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Pool renamed to rhel."]
    assert text_of(landed, "pool-name") == "rhel hardware pool"
    assert pool_named(dbsession, "rhel").id == tree["redhat"].id
    assert pool_named(dbsession, "redhat") is None


def test_rename_to_the_same_name_is_fine(admin_app, tree):
    response = post_form(admin_app, f"/pools/{tree['redhat'].id}/rename", name="redhat")
    assert flashes(after_redirect(response), "success") == ["Pool renamed to redhat."]


def test_rename_with_a_bad_name_flashes_why(admin_app, tree, dbsession):
    def check(name, message):
        before = snapshot(dbsession)
        response = post_form(admin_app, f"/pools/{tree['redhat'].id}/rename", name=name)
        [flash] = flashes(after_redirect(response), "danger")
        assert message in flash
        assert snapshot(dbsession) == before

    each(BAD_NAMES, check)


def test_rename_to_a_sibling_name_flashes_a_conflict(admin_app, tree, dbsession):
    before = snapshot(dbsession)
    response = post_form(admin_app, f"/pools/{tree['redhat'].id}/rename", name="fedora")
    assert flashes(after_redirect(response), "danger") == [
        "a pool named 'fedora' already exists in 'hardware'"
    ]
    assert snapshot(dbsession) == before


# -- POST /pools/{id}/move ----------------------------------------------------------------------


def test_move_through_the_form(admin_app, tree, dbsession):
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    page = admin_app.get(f"/pools/{rack.id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/move"))
    form["parent"] = str(tree["redhat"].id)
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Pool rack moved into redhat."]
    rack = pool_named(dbsession, "rack")
    assert rack.parent_id == tree["redhat"].id
    assert rack.path == f"{tree['redhat'].path}{rack.id}/"


def test_move_carries_the_subtree(admin_app, tree, dbsession):
    response = post_form(
        admin_app, f"/pools/{tree['fedora'].id}/move", parent=str(tree["redhat"].id)
    )
    assert flashes(after_redirect(response), "success") == ["Pool fedora moved into redhat."]
    vms = pool_named(dbsession, "fedora-vms")
    assert vms.path.startswith(tree["redhat"].path)
    assert vms.depth == tree["redhat"].depth + 2


@pytest.mark.parametrize("target", ["fedora", "rack"])
def test_move_into_its_own_subtree_is_refused(admin_app, tree, dbsession, target):
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    targets = {"fedora": tree["fedora"].id, "rack": rack.id}
    before = snapshot(dbsession)
    response = post_form(admin_app, f"/pools/{tree['fedora'].id}/move", parent=str(targets[target]))
    assert flashes(after_redirect(response), "danger") == [
        "cannot move 'fedora' into itself or one of its own sub-pools"
    ]
    assert snapshot(dbsession) == before


def test_move_to_the_wrong_kind_of_parent_is_refused(admin_app, tree, dbsession):
    def check(pool, target, message):
        before = snapshot(dbsession)
        response = post_form(admin_app, f"/pools/{tree[pool].id}/move", parent=str(tree[target].id))
        [flash] = flashes(after_redirect(response), "danger")
        assert message in flash
        assert snapshot(dbsession) == before

    each(
        [
            ("fedora-vms", "users", "a VM pool must be inside a hardware pool"),
            ("fedora-vms", "redhat-vms", "a VM pool must be inside a hardware pool"),
            ("fedora", "redhat-vms", "a hardware pool must be inside a directory or hardware pool"),
            ("root", "users", "the root pool cannot be moved"),
            ("users", "hardware", "a directory pool must be inside a directory pool"),
        ],
        check,
    )


def test_move_next_to_a_pool_of_the_same_name_is_refused(admin_app, tree, dbsession):
    PoolFactory(name="fedora-vms", kind="vm", parent=tree["redhat"])
    before = snapshot(dbsession)
    response = post_form(
        admin_app, f"/pools/{tree['fedora-vms'].id}/move", parent=str(tree["redhat"].id)
    )
    assert flashes(after_redirect(response), "danger") == [
        "a pool named 'fedora-vms' already exists in 'redhat'"
    ]
    assert snapshot(dbsession) == before


def test_move_to_no_or_unknown_parent_is_404(admin_app, tree, dbsession):
    def check(parent):
        before = snapshot(dbsession)
        page = admin_app.post(
            f"/pools/{tree['fedora'].id}/move",
            {"csrf_token": csrf_token(admin_app), "parent": parent},
            status=404,
        )
        assert "There is nothing here" in text_of(page, "error-message")
        assert snapshot(dbsession) == before

    each(["", "abc", "999999", "-3", "9" * 30], check)


# -- POST /pools/{id}/delete --------------------------------------------------------------------


def test_delete_an_empty_pool_through_the_form(admin_app, tree, dbsession):
    page = admin_app.get(f"/pools/{tree['redhat-vms'].id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/delete"))
    response = form.submit(status=303)
    assert location_path(response) == f"/pools/{tree['redhat'].id}"
    landed = response.follow()
    assert flashes(landed, "success") == ["Pool redhat-vms deleted."]
    assert "redhat-vms" not in landed.text.replace("Pool redhat-vms deleted.", "")
    assert pool_named(dbsession, "redhat-vms") is None
    admin_app.get(f"/pools/{tree['redhat-vms'].id}", status=404)


def test_delete_a_pool_with_sub_pools_and_hosts_is_refused(admin_app, tree, dbsession):
    HostFactory(pool=tree["fedora"])
    HostFactory(pool=tree["fedora"])
    before = snapshot(dbsession)
    response = post_form(admin_app, f"/pools/{tree['fedora'].id}/delete")
    assert location_path(response) == f"/pools/{tree['fedora'].id}"
    assert flashes(response.follow(), "danger") == [
        "pool 'fedora' is not empty: it holds 1 sub-pool, 2 hosts; move or delete them first"
    ]
    assert snapshot(dbsession) == before


def test_delete_a_vm_pool_with_a_vm_is_refused(admin_app, tree, dbsession):
    VmFactory(pool=tree["fedora-vms"])
    response = post_form(admin_app, f"/pools/{tree['fedora-vms'].id}/delete")
    assert flashes(after_redirect(response), "danger") == [
        "pool 'fedora-vms' is not empty: it holds 1 VM; move or delete them first"
    ]
    assert pool_named(dbsession, "fedora-vms") is not None


def test_built_in_pools_cannot_be_deleted(admin_app, tree, dbsession):
    def check(pool, message):
        before = snapshot(dbsession)
        response = post_form(admin_app, f"/pools/{tree[pool].id}/delete")
        assert flashes(after_redirect(response), "danger") == [message]
        assert snapshot(dbsession) == before

    each(
        [
            ("root", "the root pool cannot be deleted"),
            ("default", "the built-in pool 'default' cannot be deleted"),
            ("users", "the built-in pool 'users' cannot be deleted"),
        ],
        check,
    )


def test_a_built_in_pool_cannot_be_renamed_or_moved_so_it_stays_protected(
    admin_app, tree, dbsession
):
    renamed = post_form(admin_app, f"/pools/{tree['default'].id}/rename", name="spare")
    assert flashes(after_redirect(renamed), "danger") == [
        "the built-in pool 'default' cannot be renamed"
    ]
    assert tree["default"].name == "default"
    moved = post_form(admin_app, f"/pools/{tree['default'].id}/move", parent=tree["fedora"].id)
    assert flashes(after_redirect(moved), "danger") == [
        "the built-in pool 'default' cannot be moved"
    ]
    response = post_form(admin_app, f"/pools/{tree['default'].id}/delete")
    assert flashes(after_redirect(response), "danger") != []
    assert dbsession.get(type(tree["default"]), tree["default"].id) is not None
