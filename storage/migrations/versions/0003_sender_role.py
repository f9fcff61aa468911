"""sender roles: message.role; failing customer addresses

Revision ID: 0003
Revises: 0002

Every inbound message records the role its sender had towards its case
(customer, staff, vendor, third-party, automation); a customer's e-mail
address that hard-bounced is marked failing, with when and why.
"""
from alembic import op
import sqlalchemy as sa

import casegate.storage.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('message', sa.Column('role', sa.String(length=20), nullable=False, server_default=''))
    op.add_column('customer_contact', sa.Column('failing_since', casegate.storage.models.UTCDateTime(), nullable=True))
    op.add_column('customer_contact', sa.Column('failing_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customer_contact') as batch:
        batch.drop_column('failing_reason')
        batch.drop_column('failing_since')
    with op.batch_alter_table('message') as batch:
        batch.drop_column('role')
