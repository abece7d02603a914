"""Aliases (``name@prod``) with their history, the weights' SHA-256 in the index, and weights paths
relative to the data dir (so the data dir can move).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
    op.create_table(
        "aliases",
        sa.Column("domain", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("alias", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("moved", sa.Float, nullable=False),
    )
    data_dir = context.config.attributes.get("data_dir") or ""
    connection = op.get_bind()
    policies = sa.table("policies", sa.column("domain"), sa.column("name"), sa.column("version"),
                        sa.column("weights_path"), sa.column("card_json"), sa.column("sha256"))
    for row in connection.execute(sa.select(policies)).fetchall():
        path = Path(row.weights_path)
        relative = str(path.relative_to(data_dir)) if data_dir and path.is_absolute() and path.is_relative_to(
            data_dir) else row.weights_path
        sha = json.loads(row.card_json).get("weights_sha256")
        connection.execute(policies.update().where(
            policies.c.domain == row.domain, policies.c.name == row.name, policies.c.version == row.version
        ).values(weights_path=relative, sha256=sha))


def downgrade() -> None:
    op.drop_table("alias_history")
    op.drop_table("aliases")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("sha256")
