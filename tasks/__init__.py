"""Prefect tasks of realspace: thin adapters over the library (shipped as realspace.tasks)."""
