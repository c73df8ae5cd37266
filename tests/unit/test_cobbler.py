"""The Cobbler client against the loopback Cobbler: tokens, handles, every fault."""

from __future__ import annotations

import socket
import time

import pytest

from fedoracloud.cobbler import (
    CobblerAuthError,
    CobblerClient,
    CobblerDuplicate,
    CobblerError,
    CobblerNotFound,
    CobblerSettings,
    CobblerUnavailable,
    InvalidToken,
    SystemSpec,
)
from fedoracloud.services.tasks import is_retryable
from fedoracloud.settings import ConfigError

from ..cobbler_server import FakeCobbler


@pytest.fixture
def cobbler():
    with FakeCobbler() as server:
        server.add_profile("Fedora-40-x86_64")
        server.add_profile("CentOS-Stream-9-x86_64", distro="CentOS-Stream-9-x86_64")
        server.add_image("memtest86")
        yield server


def settings_for(server: FakeCobbler, **kw) -> CobblerSettings:
    values = {"url": server.url, "username": "cobbler", "password": "cobbler-password"}
    return CobblerSettings(**{**values, **kw})


@pytest.fixture
def client(cobbler):
    return CobblerClient(settings_for(cobbler, timeout=2))


SPEC = SystemSpec(
    name="6f1c3b1e-2d4a-4c55-9b7e-0fedc10d0001",
    mac="52:54:00:12:34:56",
    hostname="web01.cloud.fedoraproject.org",
    ip="209.132.181.20",
    profile="Fedora-40-x86_64",
    owners=("jdoe",),
)


def test_login_gives_a_token_cobbler_knows(client):
    token = client.login("cobbler", "cobbler-password")
    assert client.check_token(token)
    assert not client.check_token("made-up")


def test_a_wrong_password_is_an_auth_error(client):
    with pytest.raises(CobblerAuthError, match="login failed"):
        client.login("cobbler", "wrong")
    bad = CobblerClient(settings_for_client(client, password="wrong"))
    with pytest.raises(CobblerAuthError):
        bad.new_system()


def settings_for_client(client: CobblerClient, **kw) -> CobblerSettings:
    s = client.settings
    return CobblerSettings(**{"url": s.url, "username": s.username, "password": s.password, **kw})


def test_profiles_images_and_systems_are_listed(client):
    assert sorted(p["name"] for p in client.get_profiles()) == [
        "CentOS-Stream-9-x86_64",
        "Fedora-40-x86_64",
    ]
    assert [i["name"] for i in client.get_images()] == ["memtest86"]
    assert client.get_systems() == []


def test_create_system_sets_every_field(client, cobbler):
    client.create_system(SPEC)
    system = cobbler.state.systems[SPEC.name]
    assert system["profile"] == "Fedora-40-x86_64"
    assert system["hostname"] == SPEC.hostname
    assert system["owners"] == ["jdoe"]
    assert system["netboot_enabled"] is True
    assert system["interfaces"]["eth0"] == {
        "macaddress": SPEC.mac,
        "ipaddress": SPEC.ip,
        "dns_name": SPEC.hostname,
    }
    assert client.get_system(SPEC.name)["name"] == SPEC.name
    assert [s["name"] for s in client.get_systems()] == [SPEC.name]


def test_low_level_calls_with_an_explicit_token(client, cobbler):
    token = client.login("cobbler", "cobbler-password")
    handle = client.new_system(token)
    assert handle.startswith("___NEW___system::")
    client.modify_system(handle, "name", "img01", token)
    client.modify_system(handle, "image", "memtest86", token)
    client.modify_system(
        handle, "modify_interface", {"macaddress-eth0": "52:54:00:00:00:01"}, token
    )
    client.save_system(handle, token)
    client.sync(token)
    assert cobbler.state.systems["img01"]["image"] == "memtest86"
    assert cobbler.state.syncs == 1
    client.remove_system("img01", token)
    assert cobbler.state.systems == {}


def test_an_unknown_profile_is_not_found_and_nothing_is_saved(client, cobbler):
    with pytest.raises(CobblerNotFound, match="invalid profile name: Fedora-99"):
        client.create_system(SystemSpec(name="x1", mac="52:54:00:00:00:02", profile="Fedora-99"))
    assert cobbler.state.systems == {}


def test_a_duplicate_name_is_refused(client, cobbler):
    client.create_system(SPEC)
    with pytest.raises(CobblerDuplicate, match="already exists"):
        client.create_system(SPEC)
    assert len(cobbler.state.systems) == 1


def test_removing_an_unknown_system_is_not_found(client):
    with pytest.raises(CobblerNotFound, match="does not exist"):
        client.remove_system("nope")
    assert client.ensure_removed("nope") is False


def test_an_explicit_expired_token_is_invalid(client, cobbler):
    token = client.login("cobbler", "cobbler-password")
    cobbler.expire_tokens()
    with pytest.raises(InvalidToken, match="invalid token"):
        client.new_system(token)


def test_the_clients_own_token_is_renewed_once_expired(client, cobbler):
    client.sync()
    first = client.token()
    cobbler.expire_tokens()
    client.sync()
    assert client.token() != first
    assert cobbler.state.calls.count("login") == 2
    assert cobbler.state.syncs == 2


def test_tokens_expire_after_their_ttl():
    with FakeCobbler(token_ttl=0.2) as server:
        client = CobblerClient(settings_for(server))
        token = client.login("cobbler", "cobbler-password")
        time.sleep(0.3)
        assert not client.check_token(token)


def test_a_503_is_unavailable_and_retryable(client, cobbler):
    cobbler.fail_on = {"save_system"}
    with pytest.raises(CobblerUnavailable, match="503") as caught:
        client.create_system(SPEC)
    assert is_retryable(caught.value)
    assert cobbler.state.systems == {}
    cobbler.fail_on = set()
    client.create_system(SPEC)
    assert SPEC.name in cobbler.state.systems


def test_a_stopped_cobbler_is_refused_and_retryable(cobbler):
    client = CobblerClient(settings_for(cobbler))
    cobbler.stop()
    with pytest.raises(CobblerUnavailable, match="refused") as caught:
        client.get_profiles()
    assert is_retryable(caught.value)
    cobbler.start()
    assert len(client.get_profiles()) == 2


def test_a_slow_cobbler_times_out(cobbler):
    client = CobblerClient(settings_for(cobbler, timeout=0.2))
    cobbler.delay = 1.0
    # the client's own timeout gave up (the message says so), not the server's answer
    with pytest.raises(CobblerUnavailable, match=r"did not answer get_profiles within 0\.2 s"):
        client.get_profiles()


def test_nothing_listening_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = CobblerClient(
        CobblerSettings(url=f"http://127.0.0.1:{port}/cobbler_api", username="u", timeout=1)
    )
    with pytest.raises(CobblerUnavailable):
        client.get_images()


def test_a_system_needs_a_name_and_a_profile(client):
    with pytest.raises(CobblerError, match="not a Cobbler system name"):
        client.create_system(SystemSpec(name="bad name", mac="52:54:00:00:00:03", profile="p"))
    with pytest.raises(CobblerError, match="profile or an image"):
        client.create_system(SystemSpec(name="ok", mac="52:54:00:00:00:03"))


def test_no_url_means_no_client():
    with pytest.raises(CobblerError, match=r"fedoracloud\.cobbler\.url is empty"):
        CobblerClient(CobblerSettings())


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"fedoracloud.cobbler.url": "ftp://x/"}, "expected http"),
        ({"fedoracloud.cobbler.url": "http://cobbler/cobbler_api"}, "username: required"),
        (
            {
                "fedoracloud.cobbler.url": "http://c/",
                "fedoracloud.cobbler.username": "u",
                "fedoracloud.cobbler.timeout": "soon",
            },
            "expected seconds",
        ),
        ({"fedoracloud.cobbler.timeout": "0"}, "between 0.1 and 600"),
    ],
)
def test_bad_settings_name_the_setting(raw, message):
    with pytest.raises(ConfigError, match=message):
        CobblerSettings.from_dict(raw)


def test_settings_are_read_with_defaults():
    parsed = CobblerSettings.from_dict(
        {
            "fedoracloud.cobbler.url": "https://cobbler.example.org/cobbler_api",
            "fedoracloud.cobbler.username": "fedoracloud",
            "fedoracloud.cobbler.password": "s3cret",
        }
    )
    assert parsed.configured and parsed.timeout == 10.0
    assert "s3cret" not in repr(parsed)
    assert not CobblerSettings.from_dict({}).configured
