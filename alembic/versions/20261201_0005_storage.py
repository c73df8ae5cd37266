"""Storage: servers, replication, storage pools on hosts, volumes.

A storage pool is now used by one or more hardware pools (a link table instead of one
``hardware_pool_id``); servers and pools remember what their last check said.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:10:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'storage_pool_hardware_pools',
        sa.Column('storage_pool_id', sa.Integer(), nullable=False),
        sa.Column('hardware_pool_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['hardware_pool_id'], ['pools.id'],
            name=op.f('fk_storage_pool_hardware_pools_hardware_pool_id_pools'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['storage_pool_id'], ['storage_pools.id'],
            name=op.f('fk_storage_pool_hardware_pools_storage_pool_id_storage_pools'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint(
            'storage_pool_id', 'hardware_pool_id', name=op.f('pk_storage_pool_hardware_pools')
        ),
    )
    op.execute(
        "INSERT INTO storage_pool_hardware_pools (storage_pool_id, hardware_pool_id)"
        " SELECT id, hardware_pool_id FROM storage_pools WHERE hardware_pool_id IS NOT NULL"
    )
    with op.batch_alter_table('storage_pools', schema=None) as batch_op:
        batch_op.drop_constraint('fk_storage_pools_hardware_pool_id_pools', type_='foreignkey')
        batch_op.drop_column('hardware_pool_id')
        batch_op.add_column(sa.Column('initiator_iqn', sa.String(length=223), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), server_default='', nullable=False))
    with op.batch_alter_table('storage_servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    """Downgrade schema (a storage pool keeps the first hardware pool that used it)."""
    with op.batch_alter_table('storage_servers', schema=None) as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('checked_at')
    with op.batch_alter_table('storage_pools', schema=None) as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('initiator_iqn')
        batch_op.add_column(sa.Column('hardware_pool_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_storage_pools_hardware_pool_id_pools', 'pools', ['hardware_pool_id'], ['id'],
            ondelete='RESTRICT',
        )
    op.execute(
        "UPDATE storage_pools SET hardware_pool_id = (SELECT MIN(hardware_pool_id)"
        " FROM storage_pool_hardware_pools l WHERE l.storage_pool_id = storage_pools.id)"
    )
    op.drop_table('storage_pool_hardware_pools')
