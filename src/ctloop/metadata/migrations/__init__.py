"""Alembic migrations of the metadata database (one revision per schema change)."""
