"""A sweep in an MLflow tracking store.

- ``connection``: the tracking URI, opening the store and the sweep's experiment, a
  fail-fast reachability check, the per-process cache of open stores;
- ``layout``: what each run of a sweep is called and holds (tags, params, metrics);
- ``artifacts``: the artifact files (their format, atomic writes, reading them back);
- ``runs``: ``SweepStore``, which finds, creates, reconciles and logs the runs;
- ``reader``: ``SweepReader``, a sweep read back in bulk (``load_runs``: its runs as a
  DataFrame);
- ``publish``: the report, built from a reader and logged to the parent run;
- ``secrets``: credentials kept out of what is printed, logged and stored.

MLflow and pandas are imported only when a store is opened or a frame built, so that
importing this package (as the command line does) stays light.
"""

from .reader import SweepReader, load_runs

__all__ = ["SweepReader", "load_runs"]
