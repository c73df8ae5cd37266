"""Networks, IP pools and MAC addresses.

Networks say which node interface their bridge sits on and carry a description; the
hardware pools that carry a network are a link table; IP pools are looked up by network.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:10:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("networks") as batch:
        batch.add_column(
            sa.Column("interface", sa.String(length=15), nullable=False, server_default="eth0")
        )
        batch.add_column(
            sa.Column("description", sa.String(length=255), nullable=False, server_default="")
        )
    op.create_table(
        "network_hardware_pools",
        sa.Column("network_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["networks.id"],
            name="fk_network_hardware_pools_network_id_networks",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["pools.id"],
            name="fk_network_hardware_pools_pool_id_pools",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("network_id", "pool_id", name="pk_network_hardware_pools"),
    )
    op.create_index("ix_ip_pools_network_id", "ip_pools", ["network_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_ip_pools_network_id", table_name="ip_pools")
    op.drop_table("network_hardware_pools")
    with op.batch_alter_table("networks") as batch:
        batch.drop_column("description")
        batch.drop_column("interface")
