"""message.kind: what an outgoing message is (ack, reply, status-update, ...)

Revision ID: 0002
Revises: 0001

Before this, the kind was folded into ``message.source`` as "outbox:<kind>"
and recovered by string matching; now it is a column of its own and
``source`` names where the message came from ("outbox" for ours).
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('message', sa.Column('kind', sa.String(length=40), nullable=False, server_default=''))
    op.execute("UPDATE message SET kind = substr(source, 8), source = 'outbox' WHERE source LIKE 'outbox:%'")


def downgrade() -> None:
    op.execute("UPDATE message SET source = 'outbox:' || kind WHERE source = 'outbox'")
    with op.batch_alter_table('message') as batch:
        batch.drop_column('kind')
