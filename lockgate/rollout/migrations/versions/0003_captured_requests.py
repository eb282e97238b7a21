"""Captured requests: a sample of a deployment's answered traffic, for replay against a candidate.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "captured_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "deployment",
            sa.String(63),
            sa.ForeignKey("deployments.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(63), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=True),
    )
    op.create_index("ix_captured_requests_deployment_id", "captured_requests", ["deployment", "id"])


def downgrade() -> None:
    op.drop_index("ix_captured_requests_deployment_id", table_name="captured_requests")
    op.drop_table("captured_requests")
