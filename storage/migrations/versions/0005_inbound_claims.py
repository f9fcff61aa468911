"""shared mailbox work (issue 16): one fetcher per source at a time

Revision ID: 0005
Revises: 0004

``inbound_lease`` holds one row per fetching source (an IMAP mailbox): the
daemon that fetches from it now (``holder``, NULL when free) and a
heartbeat counter (``beat``) the holder raises every second or so. The
other daemons stand by and take the lease over when the counter stops
moving (daemon/sources/lease.py).
"""
from alembic import op
import sqlalchemy as sa

import casegate.storage.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_lease',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('beat', sa.BigInteger(), nullable=False),
    sa.Column('acquired_at', casegate.storage.models.UTCDateTime(), nullable=True),
    sa.Column('renewed_at', casegate.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_inbound_lease'))
    )


def downgrade() -> None:
    op.drop_table('inbound_lease')
