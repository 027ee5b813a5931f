"""columnar: an index for the columnar state's overlay read (a project's rows changed since)

Revision ID: 0009_columnar
Revises: 0010_label_studio
"""
from alembic import op

revision = "0009_columnar"
down_revision = "0010_label_studio"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_examples_project_updated", "examples", ["project_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_examples_project_updated", table_name="examples")
