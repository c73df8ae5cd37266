"""Every URL of FedoraCloud, with the context factory that loads what the URL names."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound

from .models import Host, Pool


class SiteContext:
    """The whole site: lists (filtered per user in SQL) and site settings."""

    pool_path = None

    def __init__(self, request: Any = None) -> None:
        self.request = request


class PoolContext:
    """One pool; its permissions come from the grants on it and above it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @property
    def pool_path(self) -> str:
        return self.pool.path


class HostContext:
    """One host; governed by its hardware pool."""

    def __init__(self, host: Host) -> None:
        self.host = host

    @property
    def pool_path(self) -> str:
        return self.host.pool.path


def _id(request: Any, key: str) -> int:
    raw = request.matchdict.get(key, "")
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPNotFound()
    return int(raw)


def pool_factory(request: Any) -> PoolContext:
    """Load ``{pool_id}`` or answer 404."""
    pool = request.dbsession.get(Pool, _id(request, "pool_id"))
    if pool is None:
        raise HTTPNotFound()
    return PoolContext(pool)


def host_factory(request: Any) -> HostContext:
    """Load ``{host_id}`` or answer 404."""
    host = request.dbsession.get(Host, _id(request, "host_id"))
    if host is None:
        raise HTTPNotFound()
    return HostContext(host)


def includeme(config: Any) -> None:
    """Add every route."""
    config.add_static_view("static", "fedoracloud:static/", cache_max_age=3600)
    config.set_root_factory(SiteContext)

    config.add_route("home", "/")
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")

    config.add_route("pools", "/pools")
    config.add_route("pool", "/pools/{pool_id}", factory=pool_factory)
    config.add_route("pool_create", "/pools/{pool_id}/children", factory=pool_factory)
    config.add_route("pool_rename", "/pools/{pool_id}/rename", factory=pool_factory)
    config.add_route("pool_move", "/pools/{pool_id}/move", factory=pool_factory)
    config.add_route("pool_delete", "/pools/{pool_id}/delete", factory=pool_factory)

    config.add_route("hosts", "/hosts")
    config.add_route("host", "/hosts/{host_id}", factory=host_factory)
    config.add_route("host_move", "/hosts/{host_id}/move", factory=host_factory)

    config.add_route("api_pools", "/api/v1/pools")
    config.add_route("api_pool", "/api/v1/pools/{pool_id}", factory=pool_factory)
    config.add_route("api_hosts", "/api/v1/hosts")
    config.add_route("api_host", "/api/v1/hosts/{host_id}", factory=host_factory)
