"""Alembic migrations of the VeinScope store (shipped inside the package)."""
