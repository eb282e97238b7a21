"""Alembic environment for the rollout store, run programmatically by ``SqlStore`` on open.

The store passes its open connection in ``config.attributes["connection"]``; no alembic.ini is
needed. The version table has its own name so the store can share a database with MLflow's.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "lockgate_rollout_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run these migrations through lockgate.rollout.store.SqlStore")
context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
