"""factory_boy factories, one per model the tests build; ``bind()`` points them at a session."""

from __future__ import annotations

import uuid
from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory

from fedoracloud import models
from fedoracloud.models import PoolKind
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService


class _Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


class UserFactory(_Base):
    class Meta:
        model = models.User

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda o: o.username.title())
    email = factory.LazyAttribute(lambda o: f"{o.username}@fedoraproject.org")


class PoolFactory(_Base):
    """Pools go through the service, which computes the materialized path."""

    class Meta:
        model = models.Pool

    name = factory.Sequence(lambda n: f"pool{n}")
    kind = PoolKind.HARDWARE.value
    parent: Any = None

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> models.Pool:
        session = cls._meta.sqlalchemy_session
        pools = PoolService(ServiceContext.for_session(session))
        parent = kwargs.pop("parent", None) or pools.ensure_builtin()["hardware"]
        return pools.create(
            kwargs.pop("name"), kwargs.pop("kind"), parent, kwargs.pop("description", "")
        )


class HostFactory(_Base):
    class Meta:
        model = models.Host

    uuid = factory.LazyFunction(lambda: str(uuid.uuid4()))
    hostname = factory.Sequence(lambda n: f"node{n:03d}.cloud.example.org")
    pool = factory.SubFactory(PoolFactory)
    pool_kind = PoolKind.HARDWARE.value
    state = "available"
    arch = "x86_64"
    hypervisor = "qemu"
    memory_mib = 16384
    cpu_count = 8
    libvirt_uri = factory.LazyAttribute(lambda o: f"qemu+tls://{o.hostname}/system")


class HostNicFactory(_Base):
    class Meta:
        model = models.HostNic

    host = factory.SubFactory(HostFactory)
    name = factory.Sequence(lambda n: f"eth{n}")
    mac = factory.Sequence(lambda n: f"52:54:00:00:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}")


class VmFactory(_Base):
    class Meta:
        model = models.Vm

    uuid = factory.LazyFunction(lambda: str(uuid.uuid4()))
    name = factory.Sequence(lambda n: f"vm{n}")
    pool = factory.SubFactory(
        PoolFactory, kind=PoolKind.VM.value, parent=factory.SubFactory(PoolFactory)
    )
    pool_kind = PoolKind.VM.value
    vcpus = 2
    memory_mib = 2048
    state = "stopped"


class RoleGrantFactory(_Base):
    class Meta:
        model = models.RoleGrant

    pool = factory.SubFactory(PoolFactory)
    user = factory.SubFactory(UserFactory)
    role = "user"


class NetworkFactory(_Base):
    """Networks go through the service, which checks them; ``ip_range`` (first, last) also
    makes an IP pool named after the network."""

    class Meta:
        model = models.Network

    name = factory.Sequence(lambda n: f"net{n}")
    bridge = factory.Sequence(lambda n: f"brf{n}")
    interface = factory.Sequence(lambda n: f"ethf{n}")
    cidr = factory.Sequence(lambda n: f"10.{128 + n // 256 % 128}.{n % 256}.0/24")
    usage = "guest"

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> models.Network:
        from fedoracloud.services.networks import NetworkInput, NetworkService

        service = NetworkService(ServiceContext.for_session(cls._meta.sqlalchemy_session))
        ip_range = kwargs.pop("ip_range", None)
        pools = kwargs.pop("hardware_pools", [])
        network = service.create(
            NetworkInput.parse({**kwargs, "hardware_pools": [p.id for p in pools]})
        )
        if ip_range is not None:
            service.create_pool(network, f"{network.name}-ips", *ip_range)
        return network


class StoragePoolFactory(_Base):
    """A directory storage pool; pass ``hardware_pools=[...]`` to say who uses it."""

    class Meta:
        model = models.StoragePool

    name = factory.Sequence(lambda n: f"storage{n}")
    kind = "dir"
    target_path = factory.LazyAttribute(lambda o: f"/var/lib/fedoracloud/{o.name}")


ALL = [
    UserFactory,
    PoolFactory,
    HostFactory,
    HostNicFactory,
    VmFactory,
    RoleGrantFactory,
    NetworkFactory,
    StoragePoolFactory,
]


def bind(session: Any) -> None:
    """Make every factory write through this session."""
    for f in ALL:
        f._meta.sqlalchemy_session = session
