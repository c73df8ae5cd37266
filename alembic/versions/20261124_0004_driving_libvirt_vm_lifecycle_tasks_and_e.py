"""Driving libvirt: VM lifecycle, tasks and events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 18:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    upgrade_tasks()
    upgrade_vm_lifecycle()


def downgrade() -> None:
    """Downgrade schema."""
    downgrade_vm_lifecycle()
    downgrade_tasks()


# -- part C: VM lifecycle (arch, boot order, direct kernel boot, new-volume disks) --------


def upgrade_vm_lifecycle() -> None:
    with op.batch_alter_table("vms") as batch:
        batch.add_column(
            sa.Column("arch", sa.String(length=32), nullable=False, server_default="x86_64")
        )
        batch.add_column(
            sa.Column("boot_order", sa.String(length=64), nullable=False, server_default="hd")
        )
        batch.add_column(sa.Column("boot_kernel", sa.String(length=4096), nullable=True))
        batch.add_column(sa.Column("boot_initrd", sa.String(length=4096), nullable=True))
        batch.add_column(sa.Column("boot_cmdline", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("vm_disks") as batch:
        batch.add_column(sa.Column("storage_pool_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_vm_disks_storage_pool_id_storage_pools",
            "storage_pools",
            ["storage_pool_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade_vm_lifecycle() -> None:
    with op.batch_alter_table("vm_disks") as batch:
        batch.drop_constraint("fk_vm_disks_storage_pool_id_storage_pools", type_="foreignkey")
        batch.drop_column("storage_pool_id")
    with op.batch_alter_table("vms") as batch:
        for column in ("boot_cmdline", "boot_initrd", "boot_kernel", "boot_order", "arch"):
            batch.drop_column(column)


# -- end of part C -------------------------------------------------------------------------


# -- the task queue (retries with backoff, re-sends, the worker, cancellation) ----


def upgrade_tasks() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("timeout_seconds", sa.Integer(), nullable=False, server_default="600")
        )
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="5"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("worker", sa.String(length=128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_tasks_user_id", "tasks", ["user_id"], unique=False)


def downgrade_tasks() -> None:
    op.drop_index("ix_tasks_user_id", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "cancel_requested",
            "heartbeat_at",
            "worker",
            "sent_at",
            "next_attempt_at",
            "max_attempts",
            "timeout_seconds",
        ):
            batch.drop_column(column)


# -- end of the task queue -------------------------------------------------------------------
