"""Alembic environment: runs on the connection casegate hands it.

casegate runs migrations itself at start (storage.db.Database.migrate), so
there is no alembic.ini; the caller passes the open connection in
``config.attributes["connection"]``.
"""

from alembic import context

from casegate.storage.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
