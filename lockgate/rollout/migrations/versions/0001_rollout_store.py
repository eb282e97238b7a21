"""Rollout store: deployments, the append-only audit log, accumulator snapshots.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("weights", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("lease_holder", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "deployment",
            sa.String(63),
            sa.ForeignKey("deployments.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("from_phase", sa.String(32), nullable=False),
        sa.Column("to_phase", sa.String(32), nullable=False),
        sa.Column("numbers", sa.Text, nullable=False),
    )
    op.create_index("ix_rollout_events_deployment_id", "rollout_events", ["deployment", "id"])
    op.create_table(
        "accumulator_snapshots",
        sa.Column(
            "deployment",
            sa.String(63),
            sa.ForeignKey("deployments.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("variant", sa.String(63), primary_key=True),
        sa.Column("worker_id", sa.String(255), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("stats", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("accumulator_snapshots")
    op.drop_index("ix_rollout_events_deployment_id", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_table("deployments")
