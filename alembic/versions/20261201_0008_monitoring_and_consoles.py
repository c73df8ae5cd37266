"""Monitoring graphs and browser consoles.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:10:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    upgrade_consoles()


def downgrade() -> None:
    """Downgrade schema."""
    downgrade_consoles()


# -- consoles: one-time tokens for a VM's VNC display (fedoracloud/models/console.py) -------


def upgrade_consoles() -> None:
    """The console_tokens table the app writes and the console proxy consumes."""
    op.create_table(
        "console_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("vm_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("target_host", sa.String(length=255), nullable=False),
        sa.Column("target_port", sa.Integer(), nullable=False),
        sa.Column("remote_addr", sa.String(length=45), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vm_id"], ["vms.id"], name="fk_console_tokens_vm_id_vms", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_console_tokens_user_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_console_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_console_tokens_token_hash"),
    )
    op.create_index("ix_console_tokens_expires_at", "console_tokens", ["expires_at"])


def downgrade_consoles() -> None:
    op.drop_index("ix_console_tokens_expires_at", table_name="console_tokens")
    op.drop_table("console_tokens")
