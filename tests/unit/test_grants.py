"""Grant rules that need settings the functional app does not have."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fedoracloud.models import RoleGrant
from fedoracloud.permissions import Role
from fedoracloud.security import Identity
from fedoracloud.services import Conflict
from fedoracloud.services.access import AccessService
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.grants import GrantService
from fedoracloud.settings import Settings

from ..factories import UserFactory

SETTINGS = Settings.from_dict(
    {
        "sqlalchemy.url": "sqlite://",
        "fedoracloud.session_secret": "x" * 20,
        "fedoracloud.htpasswd.file": "/nonexistent",
    }
)


def test_the_last_super_admin_cannot_be_removed(dbsession, tree):
    from fedoracloud.auth import Membership

    access = AccessService(ServiceContext(dbsession, SETTINGS))
    ann, ben = UserFactory(username="ann"), UserFactory(username="ben")
    for user in (ann, ben):
        access.sync_memberships(user, [Membership("sysadmin-cloud")])
    root = tree["root"]
    dbsession.add(RoleGrant(pool_id=root.id, user_id=ann.id, role="super_admin"))
    dbsession.flush()
    ann_id = Identity(user=ann, is_super_admin=True, grants=[(root.path, Role.SUPER_ADMIN)])
    grants = GrantService(ServiceContext(dbsession, SETTINGS, ann_id))
    ben_grant = grants.grant(root, "super_admin", granter=ann_id, user=ben)
    ben_id = Identity(user=ben, is_super_admin=True, grants=[(root.path, Role.SUPER_ADMIN)])
    ann_grant = dbsession.scalars(select(RoleGrant).where(RoleGrant.user_id == ann.id)).one()
    GrantService(ServiceContext(dbsession, SETTINGS, ben_id)).revoke(ann_grant, revoker=ben_id)
    # ben is now the only super admin: nobody can take it away, nor lower it
    cleo = UserFactory(username="cleo")
    access.sync_memberships(cleo, [Membership("sysadmin-cloud")])
    cleo_id = Identity(user=cleo, is_super_admin=True, grants=[(root.path, Role.SUPER_ADMIN)])
    with pytest.raises(Conflict, match="last super admin"):
        GrantService(ServiceContext(dbsession, SETTINGS, cleo_id)).revoke(
            ben_grant, revoker=cleo_id
        )
    with pytest.raises(Conflict, match="last super admin"):
        GrantService(ServiceContext(dbsession, SETTINGS, cleo_id)).grant(
            root, "admin", granter=cleo_id, user=ben
        )
    # an administrator of the access group is another super admin: now it may go
    access.sync_memberships(cleo, [Membership("sysadmin-cloud", "administrator")])
    GrantService(ServiceContext(dbsession, SETTINGS, cleo_id)).revoke(ben_grant, revoker=cleo_id)
