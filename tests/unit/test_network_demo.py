"""The demo's networks: the seed's ~80 public addresses and its private 10.x VLAN."""

from __future__ import annotations

from sqlalchemy import select

from fedoracloud.demo import load_demo
from fedoracloud.models import Host, Network
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.networks import NetworkService

from .test_demo import demo_settings  # noqa: F401 - the demo's fixture


def test_the_demo_has_the_seeds_two_networks_carried_by_every_host(dbsession, demo_settings):  # noqa: F811
    load_demo(dbsession, demo_settings)
    load_demo(dbsession, demo_settings)  # twice: still one of each
    service = NetworkService(ServiceContext.for_session(dbsession))
    networks = {n.name: n for n in dbsession.scalars(select(Network))}
    assert sorted(networks) == ["private", "public"]
    public, private = networks["public"], networks["private"]
    assert (public.kind, public.usage, public.cidr) == ("physical", "guest", "209.132.181.0/24")
    assert (private.kind, private.vlan_id, private.usage) == ("vlan", 126, "management")
    assert private.cidr.startswith("10.")
    usage = service.usage_of_pools(public.ip_pools + private.ip_pools)
    assert [(p.name, usage[p.id].total) for p in public.ip_pools] == [("public", 80)]
    assert [(p.name, usage[p.id].total) for p in private.ip_pools] == [("management", 100)]
    for host in dbsession.scalars(select(Host)):
        assert service.networks_for_hardware_pool(host.pool) == [private, public]
