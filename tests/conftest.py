"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture
def search_queries(monkeypatch) -> list:
    """The filter of every MLflow run search made while the test runs, in order (the
    searches themselves still run)."""
    from mlflow.tracking import MlflowClient

    queries = []
    search = MlflowClient.search_runs

    def counted(self, *args, **kwargs):
        queries.append(args[1] if len(args) > 1 else kwargs.get("filter_string"))
        return search(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", counted)
    return queries
