"""leases with holders, label-change reasons, unique external ids, job backoff,
idempotency keys, webhooks, project settings history, automatic audits

Revision ID: 0002_contract
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_contract"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.add_column(sa.Column("retrain_lease_holder", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("input_kind", sa.String(20), nullable=False,
                                      server_default="tabular"))
        batch_op.add_column(sa.Column("feature_names", sa.JSON(), nullable=True))
    with op.batch_alter_table("examples") as batch_op:
        batch_op.add_column(sa.Column("raw", sa.Text(), nullable=True))
    # A project still collecting its bootstrap set wants no model yet (was 0, now -1).
    op.execute("UPDATE projects SET wanted_generation = -1 "
               "WHERE trained_generation < 0 AND wanted_generation = 0")
    with op.batch_alter_table("audits") as batch_op:
        batch_op.add_column(sa.Column("lease_holder", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("auto_enqueue", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "project_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False,
                  index=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False))
    with op.batch_alter_table("label_events") as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    with op.batch_alter_table("queries") as batch_op:
        batch_op.add_column(sa.Column("released_by", sa.Integer(), nullable=True))
    with op.batch_alter_table("examples") as batch_op:
        batch_op.create_index("ux_examples_project_external_id", ["project_id", "external_id"],
                              unique=True)
    op.create_table(
        "job_backoff",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("arg", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True, index=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ux_job_backoff_name_arg", "job_backoff", ["name", "arg"], unique=True)
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ux_idempotency_token_key", "idempotency_keys", ["token_id", "key"],
                    unique=True)
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False,
                  index=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("webhook_endpoints.id"),
                  nullable=False, index=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_webhook_deliveries_status_next", "webhook_deliveries",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status_next", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_index("ux_idempotency_token_key", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ux_job_backoff_name_arg", "job_backoff")
    op.drop_table("job_backoff")
    with op.batch_alter_table("examples") as batch_op:
        batch_op.drop_index("ux_examples_project_external_id")
    with op.batch_alter_table("queries") as batch_op:
        batch_op.drop_column("released_by")
    with op.batch_alter_table("label_events") as batch_op:
        batch_op.drop_column("reason")
    op.drop_table("project_events")
    with op.batch_alter_table("audits") as batch_op:
        batch_op.drop_column("auto_enqueue")
        batch_op.drop_column("lease_holder")
    with op.batch_alter_table("examples") as batch_op:
        batch_op.drop_column("raw")
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("feature_names")
        batch_op.drop_column("input_kind")
        batch_op.drop_column("retrain_lease_holder")
