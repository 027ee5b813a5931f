"""crowds: annotators, their answers, gold examples, consensus per query

Revision ID: 0008_crowds
Revises: 0007_verdicts
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_crowds"
down_revision = "0007_verdicts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.add_column(sa.Column("crowd", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("crowd_state", sa.JSON(), nullable=True))
    with op.batch_alter_table("examples") as batch_op:
        batch_op.add_column(sa.Column("gold", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("gold_label", sa.Integer(), nullable=True))
    with op.batch_alter_table("queries") as batch_op:
        batch_op.add_column(sa.Column("consensus", sa.JSON(), nullable=True))
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("suspended_by", sa.String(length=200), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confusion", sa.JSON(), nullable=True),
        sa.Column("answers", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("agreement", sa.Float(), nullable=False, server_default="0"),
        sa.Column("gold_answers", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("gold_correct", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_annotators_project_name", "annotators", ["project_id", "name"],
                    unique=True)
    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("query_id", sa.Integer(), sa.ForeignKey("queries.id"), nullable=False),
        sa.Column("annotator_id", sa.Integer(), sa.ForeignKey("annotators.id"),
                  nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("example_label", sa.Integer(), nullable=True),
        sa.Column("counterexample_label", sa.Integer(), nullable=True),
        sa.Column("gold", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
    )
    op.create_index("ux_answers_query_annotator", "answers", ["query_id", "annotator_id"],
                    unique=True)
    op.create_index("ix_answers_project_annotator", "answers", ["project_id", "annotator_id"])


def downgrade() -> None:
    op.drop_index("ix_answers_project_annotator", table_name="answers")
    op.drop_index("ux_answers_query_annotator", table_name="answers")
    op.drop_table("answers")
    op.drop_index("ux_annotators_project_name", table_name="annotators")
    op.drop_table("annotators")
    with op.batch_alter_table("queries") as batch_op:
        batch_op.drop_column("consensus")
    with op.batch_alter_table("examples") as batch_op:
        batch_op.drop_column("gold_label")
        batch_op.drop_column("gold")
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("crowd_state")
        batch_op.drop_column("crowd")
