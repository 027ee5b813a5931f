"""verdicts: what screening saw for each example (margin, prediction, probabilities)

Revision ID: 0007_verdicts
Revises: 0006_freshness
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_verdicts"
down_revision = "0006_freshness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("examples") as batch_op:
        batch_op.add_column(sa.Column("screen_margin", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("screen_prediction", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("screen_probabilities", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("examples") as batch_op:
        for column in ("screen_probabilities", "screen_prediction", "screen_margin"):
            batch_op.drop_column(column)
