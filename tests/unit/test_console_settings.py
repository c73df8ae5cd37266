"""The console settings and the pieces of the console proxy that need no network."""

from __future__ import annotations

import pytest

from fedoracloud.console_proxy import parse_listen, token_from_protocols
from fedoracloud.settings import ConfigError, ConsoleSettings
from fedoracloud.virt.console import (
    WILDCARDS,
    NoDisplay,
    VncDisplay,
    display_address,
    parse_vnc_display,
)


def test_defaults_and_values():
    assert ConsoleSettings.from_dict({}) == ConsoleSettings(
        token_ttl=60, websocket_url="/console/", listen_host="127.0.0.1", listen_port=6080
    )
    made = ConsoleSettings.from_dict(
        {
            "fedoracloud.console.token_ttl": "30",
            "fedoracloud.console.websocket_url": "wss://cloud.example.org:8443/console/",
            "fedoracloud.console_proxy.address": "10.5.0.20",
            "fedoracloud.console_proxy.port": "6081",
            "fedoracloud.console.embedded_proxy": "true",
        }
    )
    assert made == ConsoleSettings(
        30, "wss://cloud.example.org:8443/console/", "10.5.0.20", 6081, True
    )


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("fedoracloud.console.token_ttl", "0", "must be at least 5"),
        ("fedoracloud.console.token_ttl", "3600", "at most 600 seconds"),
        ("fedoracloud.console.token_ttl", "a minute", "expected a whole number"),
        ("fedoracloud.console.websocket_url", "console", "a path such as /console/"),
        ("fedoracloud.console.websocket_url", "http://x:1/", "a path such as /console/"),
        ("fedoracloud.console.websocket_url", "/console/?token=1", "a path such as /console/"),
        ("fedoracloud.console.embedded_proxy", "maybe", "expected true or false"),
        ("fedoracloud.console_proxy.port", "70000", "a port is at most 65535"),
        ("fedoracloud.console.heartbeat", "-1", "must be at least 0"),
    ],
)
def test_bad_values_name_the_setting(key, value, message):
    with pytest.raises(ConfigError, match=f"setting {key}: .*{message}"):
        ConsoleSettings.from_dict({key: value})


def test_listen_addresses():
    assert parse_listen("127.0.0.1:6080") == ("127.0.0.1", 6080)
    assert parse_listen("[::1]:6080") == ("::1", 6080)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)  # a free port
    for bad in ("127.0.0.1", ":6080", "host:port", "host:-1", "host:70000", "host:6²"):
        with pytest.raises(ValueError, match="--listen wants HOST:PORT"):
            parse_listen(bad)


def test_the_token_travels_in_a_subprotocol():
    assert token_from_protocols("binary, fedoracloud.token.abc") == "abc"
    assert token_from_protocols("fedoracloud.token.abc,binary") == "abc"
    assert token_from_protocols("binary") is None
    assert token_from_protocols(None) is None


LIVE = """<domain type='qemu'><devices>
  <graphics type='vnc' port='5907' autoport='yes' listen='0.0.0.0'>
    <listen type='address' address='0.0.0.0'/>
  </graphics></devices></domain>"""


def test_the_live_port_and_where_to_connect():
    display = parse_vnc_display(LIVE)
    assert display == VncDisplay(WILDCARDS[0], 5907)
    assert display_address("qemu+tls://node04.example.org/system", display) == "node04.example.org"
    assert display_address("qemu:///system", display) == "127.0.0.1"
    assert display_address("qemu+tls://node04/system", display, "10.5.0.14") == "10.5.0.14"
    assert display_address("qemu:///system", VncDisplay("127.0.0.1", 5900)) == "127.0.0.1"
    assert display_address("qemu+tls://n/system", VncDisplay("10.5.0.9", 5900)) == "10.5.0.9"
    with pytest.raises(NoDisplay, match=r"listens on 127\.0\.0\.1 of n only"):
        display_address("qemu+tls://n/system", VncDisplay("127.0.0.1", 5900))


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<domain><devices/></domain>", "has no VNC display"),
        (LIVE.replace("port='5907'", "port='-1'"), "has no port yet"),
        (
            "<domain><devices><graphics type='vnc' socket='/run/x.sock'/></devices></domain>",
            "UNIX socket",
        ),
        ("not xml", "not domain XML"),
    ],
)
def test_no_display(xml, message):
    with pytest.raises(NoDisplay, match=message):
        parse_vnc_display(xml)
