"""the queue in order of value, the question budget and the held-out metrics' hold-out

Revision ID: 0004_value
Revises: 0003_overview
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_value"
down_revision = "0003_overview"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.add_column(sa.Column("query_budget", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("recent_margins", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("queue_order", sa.String(20), nullable=False,
                                      server_default="priority"))
        batch_op.add_column(sa.Column("holdout_share", sa.Float(), nullable=False,
                                      server_default="0"))
    with op.batch_alter_table("queries") as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("priority_terms", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("ranking", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queries") as batch_op:
        batch_op.drop_column("ranking")
        batch_op.drop_column("priority_terms")
        batch_op.drop_column("priority")
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("holdout_share")
        batch_op.drop_column("queue_order")
        batch_op.drop_column("recent_margins")
        batch_op.drop_column("query_budget")
