"""Durable storage: one SQLite file in WAL mode, one writer thread, migrations at start-up."""
