"""Node enrollment and the CA (certificate serials, revocation, rate limits).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 18:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "enroll_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("remote_addr", sa.String(length=45), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enroll_attempts")),
    )
    op.create_index(
        "ix_enroll_attempts_remote_addr_at", "enroll_attempts", ["remote_addr", "at"]
    )
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("cert_serial", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("cert_not_after", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint(op.f("uq_enrollments_cert_serial"), ["cert_serial"])
        batch.create_index("ix_enrollments_host_id", ["host_id"])
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("management_address", sa.String(length=45), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("management_address")
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_index("ix_enrollments_host_id")
        batch.drop_constraint(op.f("uq_enrollments_cert_serial"), type_="unique")
        batch.drop_column("revoked_at")
        batch.drop_column("cert_not_after")
        batch.drop_column("cert_serial")
    op.drop_index("ix_enroll_attempts_remote_addr_at", table_name="enroll_attempts")
    op.drop_table("enroll_attempts")
