"""SQLAlchemy models, migrations and data access."""
