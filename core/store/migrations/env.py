"""Alembic environment of the policy index: run on the connection the index hands over."""

from __future__ import annotations

from alembic import context

from decisionlab.core.store.index import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
