"""customer master data (issue 15): people, domains, contracts, installed products

Revision ID: 0004
Revises: 0003

A customer gets an external ID (the admin's key for re-imports); people at
the customer (contact_person) own their e-mail addresses, phones and faxes
(customer_contact.person_id); declared mail domains, contracts and installed
products are tables of their own; a case may name its person, product and
contract.

SQLite cannot add a foreign key to an existing table without rebuilding it,
and rebuilding ``cases`` (referenced by every other table) under
``PRAGMA foreign_keys=ON`` is what batch mode cannot do safely; so there the
new reference columns of existing tables are plain integers (the ORM keeps
them consistent), while PostgreSQL gets the real constraints.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _fk_column(table: str, name: str, target: str, ondelete: str) -> sa.Column:
    """A new reference column on an existing table: a real FK (named as the models' convention
    names it) where the database can add one."""
    if op.get_bind().dialect.name == 'sqlite':
        return sa.Column(name, sa.Integer(), nullable=True)
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete,
                                                       name=f"fk_{table}_{name}_{target.partition('.')[0]}"),
                     nullable=True)


def upgrade() -> None:
    op.add_column('customer', sa.Column('external_id', sa.String(length=100), nullable=True))
    op.create_index('ix_customer_external_id', 'customer', ['external_id'], unique=True)

    op.create_table(
        'contact_person',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=100), nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('language', sa.String(length=10), nullable=True),
        sa.Column('reports', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name='fk_contact_person_customer_id_customer',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_contact_person'),
    )
    op.create_index('ix_contact_person_customer_id', 'contact_person', ['customer_id'])
    op.create_index('ix_contact_person_external_id', 'contact_person', ['external_id'], unique=True)

    op.create_table(
        'customer_domain',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name='fk_customer_domain_customer_id_customer',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_customer_domain'),
    )
    op.create_index('ix_customer_domain_customer_id', 'customer_domain', ['customer_id'])
    op.create_index('ix_customer_domain_domain', 'customer_domain', ['domain'], unique=True)

    op.create_table(
        'contract',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=100), nullable=False),
        sa.Column('level', sa.String(length=40), nullable=False),
        sa.Column('starts', sa.Date(), nullable=True),
        sa.Column('ends', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name='fk_contract_customer_id_customer',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_contract'),
    )
    op.create_index('ix_contract_customer_id', 'contract', ['customer_id'])
    op.create_index('ix_contract_external_id', 'contract', ['external_id'], unique=True)

    op.create_table(
        'product',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('serial', sa.String(length=100), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('version', sa.String(length=100), nullable=False),
        sa.Column('site', sa.String(length=300), nullable=False),
        sa.Column('warranty_end', sa.Date(), nullable=True),
        sa.Column('vendor', sa.String(length=100), nullable=False),
        sa.Column('contract_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name='fk_product_customer_id_customer',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contract_id'], ['contract.id'], name='fk_product_contract_id_contract',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_product'),
    )
    op.create_index('ix_product_customer_id', 'product', ['customer_id'])
    op.create_index('ix_product_serial', 'product', ['serial'], unique=True)

    op.add_column('customer_contact', _fk_column('customer_contact', 'person_id', 'contact_person.id', 'CASCADE'))
    op.create_index('ix_customer_contact_person_id', 'customer_contact', ['person_id'])
    op.add_column('cases', _fk_column('cases', 'person_id', 'contact_person.id', 'SET NULL'))
    op.add_column('cases', _fk_column('cases', 'product_id', 'product.id', 'SET NULL'))
    op.add_column('cases', _fk_column('cases', 'contract_id', 'contract.id', 'SET NULL'))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35 has it): a batch rebuild of ``cases``
    # would drop a table every other table references.
    for column in ('contract_id', 'product_id', 'person_id'):
        op.drop_column('cases', column)
    op.drop_index('ix_customer_contact_person_id', table_name='customer_contact')
    op.drop_column('customer_contact', 'person_id')
    op.drop_table('product')
    op.drop_table('contract')
    op.drop_table('customer_domain')
    op.drop_table('contact_person')
    op.drop_index('ix_customer_external_id', table_name='customer')
    op.drop_column('customer', 'external_id')
