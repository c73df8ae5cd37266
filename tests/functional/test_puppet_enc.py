"""The Puppet ENC: what each certname gets, as a document and over HTTP with its token."""

from __future__ import annotations

from typing import Any

import pytest
import webtest
import yaml

from fedoracloud import main
from fedoracloud.models import RoleGrant
from fedoracloud.puppet.enc import EncService, UnknownNode
from fedoracloud.services import NotFound
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.users import UserService
from fedoracloud.settings import PuppetSettings, Settings

from ..conftest import login
from ..factories import HostFactory

TOKEN = "enc-token-" + "z" * 24
PUPPET = {
    "fedoracloud.management_network": "10.5.0.0/16",
    "fedoracloud.collectd.password": "signing-secret",
    "fedoracloud.collectd.certname": "stats.example.org",
    "fedoracloud.web.certnames": "web01.example.org web02.example.org",
    "fedoracloud.enc.token": TOKEN,
}


def enc(dbsession: Any, **extra: str) -> EncService:
    return EncService(
        ServiceContext(
            dbsession,
            Settings(
                database_url="",
                session_secret="",
                puppet=PuppetSettings.from_dict({**PUPPET, **extra}),
            ),
        )
    )


@pytest.fixture
def hosts(dbsession: Any, tree: dict[str, Any]) -> dict[str, Any]:
    return {
        state: HostFactory(hostname=f"{state}.example.org", pool=tree["fedora"], state=state)
        for state in ("available", "maintenance", "disabled", "pending", "rejected")
    }


@pytest.mark.parametrize("state", ["available", "maintenance", "disabled"])
def test_an_approved_host_gets_the_node_class_with_its_files(
    dbsession: Any, hosts: dict[str, Any], state: str
) -> None:
    node = enc(dbsession).classify(f"{state}.example.org")
    params = node.classes["fedoracloud::node"]
    assert list(node.classes) == ["fedoracloud::node"]
    assert f'Hostname "{state}.example.org"' in params["collectd_conf"]
    assert "-s 10.5.0.0/16" in params["iptables_rules"]
    assert params["management_network"] == "10.5.0.0/16"
    assert (params["collectd_port"], params["qpid_port"]) == (25826, 5672)
    assert params["ports"]["vnc"] == "5900:6000"
    assert params["target_root"] == "/" and params["manage_packages"] is True
    assert node.parameters["fedoracloud_host_state"] == state
    assert node.parameters["fedoracloud_pool"] == "fedora"
    assert node.environment == "production"


@pytest.mark.parametrize("state", ["pending", "rejected"])
def test_a_pending_or_rejected_host_gets_no_class(
    dbsession: Any, hosts: dict[str, Any], state: str
) -> None:
    node = enc(dbsession).classify(f"{state.upper()}.example.org")
    assert node.classes == {}
    assert node.parameters["fedoracloud_host_state"] == state


def test_ui_boxes_and_the_collectd_server_get_their_classes(dbsession: Any) -> None:
    service = enc(dbsession)
    web = service.classify("web02.example.org")
    assert list(web.classes) == ["fedoracloud::web"]
    assert "ProxyPass /console/" in web.classes["fedoracloud::web"]["httpd_conf"]
    stats = service.classify("stats.example.org").classes["fedoracloud::collectd_server"]
    assert stats["auth_file_content"] == "fedoracloud: signing-secret\n"
    assert "SecurityLevel Sign" in stats["collectd_conf"]


def test_an_unknown_certname_is_refused_or_an_empty_node(dbsession: Any) -> None:
    with pytest.raises(UnknownNode, match=r"unknown certname nobody\.example\.org"):
        enc(dbsession).classify("nobody.example.org")
    empty = enc(dbsession, **{"fedoracloud.enc.unknown_node": "empty"})
    node = empty.classify("nobody.example.org")
    assert node.as_dict() == {"classes": {}, "parameters": {}, "environment": "production"}


def test_two_approved_hosts_with_one_name_are_not_guessed(
    dbsession: Any, tree: dict[str, Any]
) -> None:
    for _ in range(2):
        HostFactory(hostname="twin.example.org", pool=tree["fedora"], state="available")
    with pytest.raises(NotFound, match="2 approved hosts"):
        enc(dbsession).classify("twin.example.org")


def test_the_document_is_yaml_with_readable_files(dbsession: Any, hosts: dict[str, Any]) -> None:
    text = enc(dbsession).classify("available.example.org").to_yaml()
    assert "collectd_conf: |" in text
    loaded = yaml.safe_load(text)
    assert set(loaded) == {"classes", "parameters", "environment"}


# -- over HTTP -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enc_app(app_settings: dict[str, Any], dbengine: Any) -> Any:
    return main({}, **app_settings, **PUPPET)


@pytest.fixture
def enc_http(enc_app: Any, tm: Any, dbsession: Any) -> webtest.TestApp:
    return webtest.TestApp(
        enc_app,
        extra_environ={
            "HTTP_HOST": "example.com",
            "tm.active": True,
            "tm.manager": tm,
            "app.dbsession": dbsession,
        },
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_http_enc_answers_the_same_yaml_with_the_token(
    enc_http: webtest.TestApp, dbsession: Any, hosts: dict[str, Any]
) -> None:
    response = enc_http.get("/puppet/enc/available.example.org", headers=bearer(TOKEN))
    assert response.content_type == "application/yaml"
    assert response.text == enc(dbsession).classify("available.example.org").to_yaml()


def test_http_enc_refuses_without_the_right_token(
    enc_http: webtest.TestApp, hosts: dict[str, Any]
) -> None:
    for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {TOKEN}"}):
        response = enc_http.get("/puppet/enc/available.example.org", headers=headers, status=401)
        assert "fedoracloud::node" not in response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_http_enc_404_for_unknown_and_malformed_certnames(
    enc_http: webtest.TestApp, hosts: dict[str, Any]
) -> None:
    unknown = enc_http.get("/puppet/enc/nobody.example.org", headers=bearer(TOKEN), status=404)
    assert "unknown certname" in unknown.text
    enc_http.get("/puppet/enc/bad%22name", headers=bearer(TOKEN), status=404)


def test_http_enc_is_off_without_a_token_setting(testapp: webtest.TestApp) -> None:
    response = testapp.get("/puppet/enc/web01.example.org", headers=bearer(""), status=404)
    assert "fedoracloud.enc.token" in response.text


# -- the host page -------------------------------------------------------------------------


def test_an_admin_sees_the_rendered_files_on_an_approved_hosts_page(
    enc_http: webtest.TestApp, tree: dict[str, Any], hosts: dict[str, Any]
) -> None:
    login(enc_http, "admin")
    page = enc_http.get(f"/hosts/{hosts['available'].id}")
    files = page.html.select('[data-testid="node-file"] summary')
    assert [f.text for f in files] == [
        "/etc/collectd.conf",
        "/etc/sysconfig/libvirt-qpid",
        "/etc/sysconfig/iptables",
        "/etc/libvirt/libvirtd.conf",
    ]
    contents = [pre.text for pre in page.html.select('[data-testid="node-file"] pre')]
    assert 'Hostname "available.example.org"' in contents[0]
    pending = enc_http.get(f"/hosts/{hosts['pending'].id}")
    note = pending.html.select_one('[data-testid="node-files-note"]').text
    assert "pending" in note and "once approved" in note


def test_the_page_says_which_setting_is_missing(
    testapp: webtest.TestApp, tree: dict[str, Any], hosts: dict[str, Any]
) -> None:
    login(testapp, "admin")
    page = testapp.get(f"/hosts/{hosts['available'].id}")
    note = page.html.select_one('[data-testid="node-files-note"]').text
    assert "fedoracloud.management_network: required" in note


def test_a_monitor_sees_the_host_but_not_its_configs(
    enc_http: webtest.TestApp, dbsession: Any, tree: dict[str, Any], hosts: dict[str, Any]
) -> None:
    alice = UserService(ServiceContext.for_session(dbsession)).get_or_create("alice")
    dbsession.add(RoleGrant(pool_id=tree["fedora"].id, user_id=alice.id, role="monitor"))
    dbsession.flush()
    login(enc_http, "alice")
    page = enc_http.get(f"/hosts/{hosts['available'].id}")
    assert page.html.select_one('[data-testid="hostname"]').text == "available.example.org"
    assert "signing-secret" not in page.text
    assert not page.html.select('[data-testid="node-file"]')
