"""Prefect flows of realspace (shipped as realspace.flows)."""
