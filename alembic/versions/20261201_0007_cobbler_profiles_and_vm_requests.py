"""Cobbler profiles per pool and the VM request workflow.

Profiles and images listed from Cobbler are cached in ``cobbler_profiles``; a
``pool_profiles`` row allows one on a pool and its subtree.  A VM request gains the
profile, network, provisioning task and failure reason, and the states approved →
provisioning → provisioned | failed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:10:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STATES = "'pending', 'approved', 'provisioning', 'provisioned', 'failed', 'denied'"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'cobbler_profiles',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('distro', sa.String(length=255), nullable=False),
        sa.Column('arch', sa.String(length=32), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('present', sa.Boolean(), nullable=False),
        sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('profile', 'image')", name=op.f('ck_cobbler_profiles_kind')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cobbler_profiles')),
        sa.UniqueConstraint('kind', 'name', name=op.f('uq_cobbler_profiles_kind_name')),
    )
    op.create_table(
        'pool_profiles',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('pool_id', sa.Integer(), nullable=False),
        sa.Column('profile_id', sa.Integer(), nullable=False),
        sa.Column('allowed_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['allowed_by_id'], ['users.id'],
            name=op.f('fk_pool_profiles_allowed_by_id_users'), ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['pool_id'], ['pools.id'], name=op.f('fk_pool_profiles_pool_id_pools'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['profile_id'], ['cobbler_profiles.id'],
            name=op.f('fk_pool_profiles_profile_id_cobbler_profiles'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_profiles')),
        sa.UniqueConstraint('pool_id', 'profile_id', name=op.f('uq_pool_profiles_pool_id_profile_id')),
    )
    op.create_index('ix_pool_profiles_profile_id', 'pool_profiles', ['profile_id'], unique=False)
    with op.batch_alter_table('vm_requests', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_vm_requests_state'), type_='check')
        batch_op.create_check_constraint('state', f"state IN ({STATES})")
        batch_op.add_column(sa.Column('profile_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('network_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('task_id', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('failure_reason', sa.Text(), server_default='', nullable=False)
        )
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_vm_requests_profile_id_cobbler_profiles'), 'cobbler_profiles',
            ['profile_id'], ['id'], ondelete='SET NULL',
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_vm_requests_network_id_networks'), 'networks',
            ['network_id'], ['id'], ondelete='SET NULL',
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_vm_requests_task_id_tasks'), 'tasks', ['task_id'], ['id'],
            ondelete='SET NULL',
        )
        batch_op.create_index('ix_vm_requests_user_id', ['user_id'], unique=False)
        batch_op.create_index('ix_vm_requests_pool_id', ['pool_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema (requests past approval read as approved, a failed one as denied)."""
    op.execute(
        "UPDATE vm_requests SET state = 'approved'"
        " WHERE state IN ('provisioning', 'provisioned')"
    )
    op.execute("UPDATE vm_requests SET state = 'denied' WHERE state = 'failed'")
    with op.batch_alter_table('vm_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_vm_requests_pool_id')
        batch_op.drop_index('ix_vm_requests_user_id')
        batch_op.drop_constraint('fk_vm_requests_task_id_tasks', type_='foreignkey')
        batch_op.drop_constraint('fk_vm_requests_network_id_networks', type_='foreignkey')
        batch_op.drop_constraint('fk_vm_requests_profile_id_cobbler_profiles', type_='foreignkey')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('failure_reason')
        batch_op.drop_column('task_id')
        batch_op.drop_column('network_id')
        batch_op.drop_column('profile_id')
        batch_op.drop_constraint(batch_op.f('ck_vm_requests_state'), type_='check')
        batch_op.create_check_constraint('state', "state IN ('pending', 'approved', 'denied')")
    op.drop_index('ix_pool_profiles_profile_id', table_name='pool_profiles')
    op.drop_table('pool_profiles')
    op.drop_table('cobbler_profiles')
