"""Cobbler in FedoraCloud: the cached list of profiles and images (refreshed by a task),
which profiles each pool's users may install, and the Cobbler system of a VM.

The seed asks "Could we request a specific profile for our VM or is it just up to us?".
The answer: admins allow profiles per pool.  A profile allowed on a pool is allowed on
that pool and on every pool below it (like a grant), so allowing ``Fedora-40-x86_64`` on
the hardware pool ``fedora`` offers it in all of fedora's VM pools.

A VM installed by Cobbler has a Cobbler system named after its UUID, with its MAC, IP,
hostname, netboot on and the requesting Fedora account in ``owners``; the app logs in
with its own Cobbler account and the audit log records whom it acted for.  Without a
Cobbler URL in the ini (the demo) no system is made, and the task says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from zope.interface import Interface

from .. import cobbler
from ..models import CobblerProfile, IpAddress, Pool, PoolKind, PoolProfile, Task, User, Vm
from ..models.meta import utcnow
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .context import Service, ServiceContext
from .tasks import TaskService, register

log = logging.getLogger(__name__)

REFRESH_KIND = "cobbler.refresh"
#: what the demo's database holds (no Cobbler runs in the demo)
DEMO_PROFILES = (
    ("profile", "Fedora-40-x86_64", "Fedora-40-x86_64", "x86_64", "Fedora 40 Server"),
    ("profile", "Fedora-41-x86_64", "Fedora-41-x86_64", "x86_64", "Fedora 41 Server"),
    ("profile", "CentOS-Stream-9-x86_64", "CentOS-Stream-9-x86_64", "x86_64", "CentOS Stream 9"),
    ("image", "memtest86", "", "x86_64", "Memory test (an image)"),
)


@dataclass
class RefreshResult:
    """What a refresh found."""

    profiles: int = 0
    images: int = 0
    added: int = 0
    gone: int = 0

    def sentence(self) -> str:
        return (
            f"{self.profiles} profiles and {self.images} images listed by Cobbler"
            f" ({self.added} new, {self.gone} no longer listed)"
        )


def _text(value: Any, limit: int) -> str:
    return str(value or "")[:limit] if not isinstance(value, dict | list) else ""


class IProfileService(Interface):
    """Marker for pyramid-services: ``request.find_service(IProfileService)``."""


class ProfileService(Service):
    """The profile cache and the per-pool choice of profiles."""

    # -- the cache --

    def all(self, include_gone: bool = False) -> list[CobblerProfile]:
        """Every cached profile and image, profiles first, by name."""
        query = select(CobblerProfile).order_by(CobblerProfile.kind.desc(), CobblerProfile.name)
        if not include_gone:
            query = query.where(CobblerProfile.present.is_(True))
        return list(self.dbsession.scalars(query))

    def get(self, profile_id: int) -> CobblerProfile:
        """One cached profile, or NotFound."""
        found = self.dbsession.get(CobblerProfile, profile_id)
        if found is None:
            raise NotFound(f"no profile {profile_id}", {"field": "profile"})
        return found

    def last_refresh(self) -> Any:
        """When the cache was last refreshed from Cobbler (None: never; the demo's rows)."""
        return self.dbsession.scalar(
            select(CobblerProfile.refreshed_at)
            .where(CobblerProfile.refreshed_at.is_not(None))
            .order_by(CobblerProfile.refreshed_at.desc())
            .limit(1)
        )

    def refresh(self, client: cobbler.CobblerClient) -> RefreshResult:
        """Read profiles and images from Cobbler and make the cache say the same: new ones
        added, changed ones updated, missing ones kept but marked as no longer listed."""
        listed = [("profile", p) for p in client.get_profiles()] + [
            ("image", i) for i in client.get_images()
        ]
        now = utcnow()
        cached = {(p.kind, p.name): p for p in self.dbsession.scalars(select(CobblerProfile))}
        result = RefreshResult()
        seen = set()
        for kind, item in listed:
            name = _text(item.get("name"), 255)
            if not name:
                continue
            seen.add((kind, name))
            row = cached.get((kind, name))
            if row is None:
                row = CobblerProfile(kind=kind, name=name)
                self.dbsession.add(row)
                result.added += 1
            row.distro = _text(item.get("distro"), 255)
            row.arch = _text(item.get("arch"), 32) or _arch_of(row.distro or name)
            row.comment = _text(item.get("comment"), 2000)
            row.present = True
            row.refreshed_at = now
            if kind == "profile":
                result.profiles += 1
            else:
                result.images += 1
        for key, row in cached.items():
            if key not in seen and row.present:
                row.present = False
                row.refreshed_at = now
                result.gone += 1
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "cobbler.refresh",
            "site",
            0,
            after={
                "profiles": result.profiles,
                "images": result.images,
                "added": result.added,
                "gone": result.gone,
            },
            remote_addr=self.remote_addr,
        )
        return result

    def request_refresh(self) -> Task:
        """Queue a refresh (refused with the reason when no Cobbler is linked)."""
        if not cobbler.configured().configured:
            raise Conflict(
                "no Cobbler is linked (setting fedoracloud.cobbler.url is empty); the"
                " profiles shown are the ones already in the database"
            )
        return TaskService(self.ctx).create(REFRESH_KIND, "site", 0, {})

    def seed_demo(self) -> list[CobblerProfile]:
        """The demo's profiles (no Cobbler runs there), never refreshed; idempotent."""
        rows = []
        for kind, name, distro, arch, comment in DEMO_PROFILES:
            row = self.dbsession.scalars(
                select(CobblerProfile).where(
                    CobblerProfile.kind == kind, CobblerProfile.name == name
                )
            ).first()
            if row is None:
                row = CobblerProfile(kind=kind, name=name, distro=distro, arch=arch)
                self.dbsession.add(row)
            row.comment = comment
            rows.append(row)
        self.dbsession.flush()
        return rows

    # -- per pool --

    def allowed(self, pool: Pool) -> list[CobblerProfile]:
        """The profiles a pool's users may ask for: allowed on it or on a pool above it,
        and still listed by Cobbler."""
        return list(
            self.dbsession.scalars(
                select(CobblerProfile)
                .where(
                    CobblerProfile.present.is_(True),
                    CobblerProfile.id.in_(
                        select(PoolProfile.profile_id).where(
                            PoolProfile.pool_id.in_(pool.ancestor_ids)
                        )
                    ),
                )
                .order_by(CobblerProfile.kind.desc(), CobblerProfile.name)
            )
        )

    def choices(self, pool: Pool) -> list[tuple[CobblerProfile, Pool | None]]:
        """For the pool's profile page: every cached profile with the pool it is allowed on
        (this pool, an ancestor, or None)."""
        rows = self.dbsession.execute(
            select(PoolProfile.profile_id, Pool)
            .join(Pool, Pool.id == PoolProfile.pool_id)
            .where(PoolProfile.pool_id.in_(pool.ancestor_ids))
            .order_by(Pool.depth.desc())
        ).all()
        where: dict[int, Pool] = {}
        for profile_id, owner in rows:
            where.setdefault(profile_id, owner)  # the nearest pool wins
        return [(p, where.get(p.id)) for p in self.all(include_gone=True)]

    def _own_ids(self, pool: Pool) -> set[int]:
        return set(
            self.dbsession.scalars(
                select(PoolProfile.profile_id).where(PoolProfile.pool_id == pool.id)
            )
        )

    def check_allowed(self, pool: Pool, profile_id: int) -> CobblerProfile:
        """The profile if a pool's users may use it; InvalidInput naming the allowed ones."""
        allowed = self.allowed(pool)
        for profile in allowed:
            if profile.id == profile_id:
                return profile
        names = ", ".join(p.name for p in allowed) or "none yet (an admin allows them)"
        found = self.dbsession.get(CobblerProfile, profile_id)
        what = f"profile {found.name!r}" if found is not None else f"profile {profile_id}"
        raise InvalidInput(
            f"{what} is not allowed in pool {pool.name!r}; allowed: {names}",
            {"field": "profile"},
        )

    def set_allowed(self, pool: Pool, profile_ids: list[int]) -> list[CobblerProfile]:
        """Make exactly these profiles allowed on the pool itself (those inherited from above
        stay); refused with the reason for an unknown profile or a smart pool."""
        if pool.kind == PoolKind.SMART:
            raise InvalidInput("a smart pool is a bookmark list; it allows no profiles")
        wanted = []
        for profile_id in dict.fromkeys(profile_ids):
            profile = self.dbsession.get(CobblerProfile, profile_id)
            if profile is None:
                raise InvalidInput(f"no profile {profile_id}", {"field": "profiles"})
            wanted.append(profile)
        before = sorted(self._names(self._own_ids(pool)))
        current = self._own_ids(pool)
        wanted_ids = {p.id for p in wanted}
        gone = current - wanted_ids
        if gone:
            self.dbsession.execute(
                delete(PoolProfile).where(
                    PoolProfile.pool_id == pool.id, PoolProfile.profile_id.in_(gone)
                )
            )
        user = getattr(self.actor, "user", None)
        for profile in wanted:
            if profile.id not in current:
                self.dbsession.add(
                    PoolProfile(
                        pool_id=pool.id,
                        profile_id=profile.id,
                        allowed_by_id=user.id if user is not None else None,
                    )
                )
        self.dbsession.flush()
        after = sorted(p.name for p in wanted)
        if before != after:
            record(
                self.dbsession,
                self.actor,
                "pool.profiles",
                "pool",
                pool.id,
                pool_id=pool.id,
                before={"profiles": before},
                after={"profiles": after},
                remote_addr=self.remote_addr,
            )
        return wanted

    def own(self, pool: Pool) -> list[CobblerProfile]:
        """The profiles allowed on the pool itself."""
        ids = self._own_ids(pool)
        return [p for p in self.all(include_gone=True) if p.id in ids]

    def _names(self, ids: set[int]) -> list[str]:
        if not ids:
            return []
        return list(
            self.dbsession.scalars(select(CobblerProfile.name).where(CobblerProfile.id.in_(ids)))
        )


def _arch_of(name: str) -> str:
    for arch in ("x86_64", "aarch64", "ppc64le", "s390x", "i386"):
        if arch in name:
            return arch
    return ""


# -- a VM's Cobbler system ------------------------------------------------------------------


def system_spec(vm: Vm, mac: str, ip: str, hostname: str, owner: str) -> cobbler.SystemSpec:
    """The Cobbler system FedoraCloud makes for a VM: named after its UUID."""
    image = vm.boot_kind == "image"
    return cobbler.SystemSpec(
        name=vm.uuid,
        mac=mac,
        ip=ip,
        hostname=hostname,
        profile="" if image else vm.boot_profile or "",
        image=vm.boot_profile or "" if image else "",
        owners=(owner,) if owner else (),
        comment=f"FedoraCloud VM {vm.name} (pool {vm.pool.name})",
    )


def create_system(
    dbsession: Session, vm: Vm, spec: cobbler.SystemSpec, acting_for: str, actor: Any = None
) -> str:
    """Make the VM's Cobbler system and sync Cobbler; audited with whom the app acted for.
    Returns what happened in a sentence (a note when no Cobbler is linked)."""
    settings = cobbler.configured()
    if not settings.configured:
        return (
            "no Cobbler is linked (fedoracloud.cobbler.url is empty): no Cobbler system was"
            " made; the VM boots from the network with whatever PXE offers there"
        )
    client = cobbler.client(settings)
    client.ensure_removed(spec.name)  # a retry after a crash: start from nothing
    client.create_system(spec)
    client.sync()
    record(
        dbsession,
        actor,
        "cobbler.system.create",
        "vm",
        vm.id,
        pool_id=vm.pool_id,
        after={
            "system": spec.name,
            "profile": spec.profile or None,
            "image": spec.image or None,
            "mac": spec.mac,
            "ip": spec.ip or None,
            "hostname": spec.hostname,
            "owners": list(spec.owners),
            "acting_for": acting_for,
            "cobbler_account": settings.username,
        },
    )
    return (
        f"Cobbler system {spec.name} made for {acting_for} (profile {spec.profile or spec.image})"
    )


def create_system_for_vm(dbsession: Session, vm: Vm, actor: Any = None) -> str:
    """Make the Cobbler system of a VM with a profile, from its rows: its first NIC's MAC
    and address, its name as hostname, and the Fedora account that made the VM (for a
    request, the requester) as owner; a sentence."""
    if not vm.nics:
        raise Conflict(f"VM {vm.name} has no NIC to boot from the network")
    nic = vm.nics[0]
    ip = dbsession.scalar(select(IpAddress.address).where(IpAddress.vm_nic_id == nic.id))
    creator = dbsession.get(User, vm.created_by_id) if vm.created_by_id else None
    owner = creator.username if creator is not None else ""
    spec = system_spec(vm, nic.mac, ip or "", vm.name, owner)
    return create_system(dbsession, vm, spec, owner, actor)


def remove_system(dbsession: Session, vm: Vm, actor: Any = None) -> str:
    """Remove a VM's Cobbler system if it has one (idempotent); a sentence."""
    settings = cobbler.configured()
    if not settings.configured or not vm.boot_profile:
        return ""
    removed = cobbler.client(settings).ensure_removed(vm.uuid)
    if removed:
        record(
            dbsession,
            actor,
            "cobbler.system.remove",
            "vm",
            vm.id,
            pool_id=vm.pool_id,
            before={"system": vm.uuid, "cobbler_account": settings.username},
        )
        return f"Cobbler system {vm.uuid} removed"
    return ""


def run_refresh(task: Task, dbsession: Session) -> str:
    """The ``cobbler.refresh`` task: list Cobbler's profiles and images into the cache."""
    settings = cobbler.configured()
    if not settings.configured:
        raise Conflict("no Cobbler is linked (setting fedoracloud.cobbler.url is empty)")
    return (
        ProfileService(ServiceContext.for_session(dbsession))
        .refresh(cobbler.client(settings))
        .sentence()
    )


register(REFRESH_KIND, run_refresh, timeout=120, title="Refresh Cobbler profiles")
