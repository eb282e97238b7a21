"""Feedback joins: which variant answered each request id, and its outcome once known.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback_joins",
        sa.Column(
            "deployment",
            sa.String(63),
            sa.ForeignKey("deployments.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("outcome", sa.Text, nullable=True),
    )
    op.create_index("ix_feedback_joins_deployment_at", "feedback_joins", ["deployment", "at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_joins_deployment_at", table_name="feedback_joins")
    op.drop_table("feedback_joins")
