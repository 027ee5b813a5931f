"""typed jobs: who computed each counter-example, queries told of label changes, workers

Revision ID: 0005_jobs
Revises: 0004_value
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_jobs"
down_revision = "0004_value"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queries") as batch_op:
        batch_op.add_column(sa.Column("computed_by", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("computed_on", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("labels_changed_at", sa.DateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(20), nullable=False),
        sa.Column("device_name", sa.String(200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_workers_name", "workers", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_workers_name", table_name="workers")
    op.drop_table("workers")
    with op.batch_alter_table("queries") as batch_op:
        batch_op.drop_column("labels_changed_at")
        batch_op.drop_column("computed_on")
        batch_op.drop_column("computed_by")
