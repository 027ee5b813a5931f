"""answer events: a partial index on the label events that are annotators' answers

The answer history (``priority.load_history``) is read by every counter-example and every
screened batch with a suspicious example; without it, that read scans all of a project's
label events, one per ingested example (a million in the scale run).

Revision ID: 0011_answer_events
Revises: 0009_columnar
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_answer_events"
down_revision = "0009_columnar"
branch_labels = None
depends_on = None

ANSWERS = sa.text("why IN ('answer_example', 'answer_counterexample')")


def upgrade() -> None:
    op.create_index("ix_label_events_answers", "label_events", ["example_id"],
                    postgresql_where=ANSWERS, sqlite_where=ANSWERS)


def downgrade() -> None:
    op.drop_index("ix_label_events_answers", table_name="label_events")
