"""each host's observations' version, so the loop reads again only the hosts that changed

Every write of ``hosts.observations`` adds 1 to ``observations_version`` (the store's
statements do it themselves). On PostgreSQL, where replicas are upgraded one at a time, a
trigger adds it for a writer that did not (a replica of the version before this one), so a
replica that reads by version never misses a change written by one that does not know it.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION hosts_observations_version() RETURNS trigger AS $$
BEGIN
    IF NEW.observations_version = OLD.observations_version THEN
        NEW.observations_version := OLD.observations_version + 1;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""
_TRIGGER = """
CREATE TRIGGER hosts_observations_version BEFORE UPDATE OF observations ON hosts
FOR EACH ROW EXECUTE FUNCTION hosts_observations_version()
"""


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(
            sa.Column("observations_version", sa.BigInteger(), nullable=False, server_default="0")
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS hosts_observations_version ON hosts")
        op.execute("DROP FUNCTION IF EXISTS hosts_observations_version()")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("observations_version")
