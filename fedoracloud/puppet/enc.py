"""Puppet's external node classifier: which FedoraCloud class a certname gets, with what.

Approved hosts (available, unavailable, maintenance, disabled) get ``fedoracloud::node``
with the files the app rendered for them; pending and rejected hosts are known but get no
class; the UI boxes' certnames get ``fedoracloud::web`` and the collectd server's
``fedoracloud::collectd_server``.  Anything else is unknown: ``UnknownNode``, or an empty
node when ``fedoracloud.enc.unknown_node = empty``.  The document is built whole before it
is returned, so a failure never yields half a node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, object_session
from zope.interface import Interface

from ..models import Host, HostState
from ..services import InvalidInput, NotFound
from ..services.context import Service, ServiceContext
from ..services.networks import networks_for_hardware_pool
from ..settings import ConfigError, PuppetSettings
from . import NETWORK_SCRIPTS, ConfigRenderer, NodeNetwork, RenderedFile, check_certname

#: host states in which a host has been approved and gets its node class
APPROVED_STATES = frozenset(
    {HostState.AVAILABLE, HostState.UNAVAILABLE, HostState.MAINTENANCE, HostState.DISABLED}
)
NODE_CLASS = "fedoracloud::node"
WEB_CLASS = "fedoracloud::web"
COLLECTD_SERVER_CLASS = "fedoracloud::collectd_server"


class UnknownNode(NotFound):
    """No host, UI box or collectd server has this certname."""


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """YAML with multi-line strings (the config files) as readable literal blocks."""


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


@dataclass
class EncNode:
    """What the ENC answers for one certname."""

    environment: str
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The document as Puppet reads it."""
        return {
            "classes": self.classes,
            "parameters": self.parameters,
            "environment": self.environment,
        }

    def to_yaml(self) -> str:
        """The whole YAML document."""
        return str(
            yaml.dump(self.as_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
        )


def _contents(files: list[RenderedFile]) -> dict[str, str]:
    return {f.path: f.content for f in files}


class IEncService(Interface):
    """Marker for pyramid-services: ``request.find_service(IEncService)``."""


class EncService(Service):
    """Classifies certnames from the database and the Puppet settings."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings.puppet
        self.renderer = ConfigRenderer(self.settings)

    def _common(self) -> dict[str, Any]:
        s = self.settings
        return {
            "target_root": s.target_root,
            "manage_packages": s.manage_packages,
            "manage_services": s.manage_services,
        }

    def host_for(self, certname: str) -> Host | None:
        """The host a certname names (by host name); an approved one wins over the rest.

        Two approved hosts with one name is a conflict the ENC refuses to guess about."""
        hosts = list(
            self.dbsession.scalars(
                select(Host)
                .options(joinedload(Host.pool))
                .where(Host.hostname == certname)
                .order_by(Host.id)
            )
        )
        approved = [h for h in hosts if h.state in APPROVED_STATES]
        if len(approved) > 1:
            raise NotFound(
                f"{len(approved)} approved hosts are named {certname}; remove the stale one"
            )
        if approved:
            return approved[0]
        return hosts[-1] if hosts else None

    def node_files(self, host: Host) -> list[RenderedFile]:
        """The files Puppet lays down on a host, with the ifcfg files of the networks its
        hardware pool (or a pool above it) carries."""
        return self.renderer.node_files(host.hostname, node_networks(self.dbsession, host))

    def node_class(self, host: Host) -> dict[str, Any]:
        """The parameters of ``fedoracloud::node`` for an approved host."""
        rendered = self.node_files(host)
        files = _contents(rendered)
        network_scripts = {
            f.path.rsplit("/", 1)[1]: f.content
            for f in rendered
            if f.path.startswith(NETWORK_SCRIPTS + "/")
        }
        values = self.renderer.node_values(host.hostname)
        values.pop("hostname")
        return {
            "collectd_conf": files["/etc/collectd.conf"],
            "libvirt_qpid_sysconfig": files["/etc/sysconfig/libvirt-qpid"],
            "iptables_rules": files["/etc/sysconfig/iptables"],
            "libvirtd_conf": files["/etc/libvirt/libvirtd.conf"],
            "network_scripts": network_scripts,
            **values,
            **self._common(),
        }

    def web_class(self) -> dict[str, Any]:
        """The parameters of ``fedoracloud::web``."""
        files = _contents(self.renderer.web_files())
        return {
            "httpd_conf": files["/etc/httpd/conf.d/fedoracloud.conf"],
            "server_name": self.settings.server_name,
            **self._common(),
        }

    def collectd_server_class(self) -> dict[str, Any]:
        """The parameters of ``fedoracloud::collectd_server``."""
        s = self.settings
        files = _contents(self.renderer.collectd_server_files())
        return {
            "collectd_conf": files["/etc/collectd.conf"],
            "auth_file_content": files[s.collectd_auth_file],
            "auth_file": s.collectd_auth_file,
            "data_dir": s.collectd_data_dir,
            "listen": s.collectd_listen,
            "port": s.collectd_port,
            **self._common(),
        }

    def classify(self, certname: str) -> EncNode:
        """The node document for a certname; UnknownNode if nothing has that name."""
        name = check_certname(certname)
        s = self.settings
        node = EncNode(environment=s.environment)
        known = False
        host = self.host_for(name)
        if host is not None:
            known = True
            node.parameters.update(
                fedoracloud_host_uuid=host.uuid,
                fedoracloud_host_state=host.state,
                fedoracloud_pool=host.pool.name,
            )
            if host.state in APPROVED_STATES:
                node.classes[NODE_CLASS] = self.node_class(host)
        if name in s.web_certnames:
            known = True
            node.classes[WEB_CLASS] = self.web_class()
        if name == s.collectd_server_certname:
            known = True
            node.classes[COLLECTD_SERVER_CLASS] = self.collectd_server_class()
        if not known and s.enc_unknown_node != "empty":
            raise UnknownNode(
                f"unknown certname {name}: no host, UI box (fedoracloud.web.certnames) or"
                " collectd server (fedoracloud.collectd.certname) has it"
            )
        if node.classes or known:
            node.parameters["fedoracloud_server"] = s.server_name
        return node


def node_networks(dbsession: Session, host: Host) -> list[NodeNetwork]:
    """The networks a host carries, as the renderer takes them."""
    return [
        NodeNetwork(n.name, n.usage, n.interface, n.bridge, n.cidr, n.vlan_id)
        for n in networks_for_hardware_pool(dbsession, host.pool)
    ]


def node_files_for(settings: PuppetSettings, host: Host) -> tuple[list[RenderedFile], str]:
    """The files Puppet lays down on a host, or none and a sentence saying why not."""
    if host.state not in APPROVED_STATES:
        return [], f"This host is {host.state}: it gets its configuration once approved."
    try:
        dbsession = object_session(host)
        networks = node_networks(dbsession, host) if dbsession is not None else []
        return ConfigRenderer(settings).node_files(host.hostname, networks), ""
    except (ConfigError, InvalidInput) as exc:
        return [], f"The configuration cannot be rendered: {exc}"
