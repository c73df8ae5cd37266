"""Storage: storage servers and their replication, storage pools on the hosts, volumes.

Storage servers (a ``master`` exporting iSCSI, a ``secondary`` it replicates to) and
storage pools (``iscsi``, ``iscsi-direct``, ``logical`` on an iSCSI LUN, ``netfs``,
``dir``) are rows a super admin manages; each pool is used by one or more hardware pools
and is defined, started and refreshed on every available host of those, as tasks.  What
a pool holds — capacity, allocation, free space, its volumes — is written only from a
libvirt refresh, never computed in the database.

Task kinds (registered in ``kinds``): ``storage.pool.define``, ``storage.pool.refresh``,
``storage.volume.create``, ``storage.volume.resize``, ``storage.volume.delete`` and
``storage.server.check`` (can the server's iSCSI portal be reached).

For the VM code (worker side; each is idempotent, so a retried task finds its work done):

- ``StorageService(ctx).create_volume_for_vm(vm, disk)`` makes the volume of one
  VM disk that asks for a new one (``disk.storage_pool_id`` and ``disk.size_gib`` set,
  no ``path``) in that storage pool, records it and points the disk at it;
  ``create_volumes_for_vm(vm)`` does it for every such disk of a VM.
- ``StorageService(ctx).delete_volume(volume)`` deletes one volume on libvirt and
  forgets it; ``delete_volumes_of_vm(vm)`` deletes those of a VM's disks (an iSCSI LUN
  is left alone: the storage server owns it) and says what it did.
- ``network_disk_for(dbsession, disk)`` is the domain disk for a LUN of an
  ``iscsi-direct`` pool (qemu's own iSCSI client), None for every other disk.
"""

from .input import (
    CHECK_TIMEOUT,
    GIB,
    INITIATOR_PREFIX,
    POOL_FIELDS,
    SERVER_CAPACITY_MAX_GIB,
    SERVER_FIELDS,
    VOLUME_SIZE_MAX_GIB,
    check_server_hostname,
    size_label,
)
from .kinds import (
    run_pool_define,
    run_pool_refresh,
    run_pool_undefine,
    run_server_check,
    run_volume_create,
    run_volume_delete,
    run_volume_resize,
)
from .pools import StoragePools, visible_storage_pools
from .replication import ReplicationPair, compare_pair
from .servers import StorageServers
from .service import IStorageService, StorageService
from .volumes import StorageVolumes, network_disk_for

__all__ = [
    "CHECK_TIMEOUT",
    "GIB",
    "INITIATOR_PREFIX",
    "POOL_FIELDS",
    "SERVER_CAPACITY_MAX_GIB",
    "SERVER_FIELDS",
    "VOLUME_SIZE_MAX_GIB",
    "IStorageService",
    "ReplicationPair",
    "StoragePools",
    "StorageServers",
    "StorageService",
    "StorageVolumes",
    "check_server_hostname",
    "compare_pair",
    "network_disk_for",
    "run_pool_define",
    "run_pool_refresh",
    "run_pool_undefine",
    "run_server_check",
    "run_volume_create",
    "run_volume_delete",
    "run_volume_resize",
    "size_label",
    "visible_storage_pools",
]
