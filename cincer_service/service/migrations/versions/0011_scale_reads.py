"""scale reads: three indexes for reads that scanned a whole project at a million examples

- ``ix_label_events_answers``, partial, on the label events that are annotators' answers:
  the answer history (``priority.load_history``), read by every counter-example and every
  screened batch with a suspicious example, no longer scans one event per ingested example.
- ``ix_queries_computing_not_stream``, partial: the computing pairs that are not from the
  stream, which ``freshness.busy_examples`` reads for every counter-example (a stream of a
  million examples leaves some 200k stream pairs computing).
- ``ix_examples_project_status`` gains ``id``: screening's next batch (a project's pending
  examples in id order, 1,000 at a time) is read in index order, not sorted out of every
  pending row (577 ms per batch with 436k pending).

Revision ID: 0011_scale_reads
Revises: 0009_columnar
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_scale_reads"
down_revision = "0009_columnar"
branch_labels = None
depends_on = None

ANSWERS = sa.text("why IN ('answer_example', 'answer_counterexample')")
COMPUTING_NOT_STREAM = sa.text("status = 'computing' AND origin <> 'stream'")


def upgrade() -> None:
    op.create_index("ix_label_events_answers", "label_events", ["example_id"],
                    postgresql_where=ANSWERS, sqlite_where=ANSWERS)
    op.create_index("ix_queries_computing_not_stream", "queries", ["project_id"],
                    postgresql_where=COMPUTING_NOT_STREAM, sqlite_where=COMPUTING_NOT_STREAM)
    op.drop_index("ix_examples_project_status", table_name="examples")
    op.create_index("ix_examples_project_status", "examples", ["project_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_examples_project_status", table_name="examples")
    op.create_index("ix_examples_project_status", "examples", ["project_id", "status"])
    op.drop_index("ix_queries_computing_not_stream", table_name="queries")
    op.drop_index("ix_label_events_answers", table_name="label_events")
