"""Persistence: SQLAlchemy async tables, Alembic migrations and the repository the loop uses."""
