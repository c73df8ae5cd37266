"""The storage service: servers, pools and volumes in one object."""

from __future__ import annotations

from zope.interface import Interface

from .servers import StorageServers
from .volumes import StorageVolumes


class IStorageService(Interface):
    """Marker for pyramid-services: ``request.find_service(IStorageService)``."""


class StorageService(StorageServers, StorageVolumes):
    """Storage servers, storage pools and volumes; usable from a view, the CLI or a task."""
