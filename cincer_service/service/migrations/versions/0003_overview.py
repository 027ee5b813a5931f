"""overviews: the stored data-owner overview of each project

Revision ID: 0003_overview
Revises: 0002_contract
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_overview"
down_revision = "0002_contract"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "overviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ux_overviews_project", "overviews", ["project_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_overviews_project", table_name="overviews")
    op.drop_table("overviews")
