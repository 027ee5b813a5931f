"""label_studio: the Label Studio integration (links, annotations, tasks, review tasks)

Revision ID: 0010_label_studio
Revises: 0008_crowds
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_label_studio"
down_revision = "0008_crowds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_studio_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("ls_project", sa.String(100), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(2000), nullable=True),
        sa.Column("access_token", sa.String(200), nullable=True),
        sa.Column("backend_url", sa.String(2000), nullable=True),
        sa.Column("auth_header", sa.String(400), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("users", sa.JSON(), nullable=True),
        sa.Column("review_project_id", sa.Integer(), nullable=True),
        sa.Column("webhooks_ready", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("pull_wanted", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_label_studio_links_project", "label_studio_links", ["project_id"],
                    unique=True)
    op.create_table(
        "label_studio_annotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("ls_task_id", sa.Integer(), nullable=False),
        sa.Column("ls_annotation_id", sa.Integer(), nullable=False),
        sa.Column("example_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("suspicion_pushed", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_label_studio_annotations", "label_studio_annotations",
                    ["project_id", "ls_annotation_id"], unique=True)
    op.create_index("ix_label_studio_annotations_task", "label_studio_annotations",
                    ["project_id", "ls_task_id"])
    op.create_table(
        "label_studio_reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("ls_task_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_label_studio_reviews_query", "label_studio_reviews", ["query_id"],
                    unique=True)
    op.create_index("ix_label_studio_reviews_project_status", "label_studio_reviews",
                    ["project_id", "status"])


def downgrade() -> None:
    op.drop_table("label_studio_reviews")
    op.drop_table("label_studio_annotations")
    op.drop_table("label_studio_links")
