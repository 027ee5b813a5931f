"""fresh pairs: the τ a query was screened with, why it closed, when it was refreshed

Revision ID: 0006_freshness
Revises: 0005_jobs
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_freshness"
down_revision = "0005_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queries") as batch_op:
        batch_op.add_column(sa.Column("threshold", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("closed_reason", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refreshed_at", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queries") as batch_op:
        for column in ("refreshed_at", "closed_at", "closed_reason", "threshold"):
            batch_op.drop_column(column)
