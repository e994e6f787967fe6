"""A sweep in an MLflow tracking store.

- ``connection``: the tracking URI, opening the store and the sweep's experiment, a
  fail-fast reachability check;
- ``layout``: what each run of a sweep is called and holds (tags, params, metrics);
- ``tables``: the networks' rows and end points, a piece (a shard's networks of one cell)
  at a time, written by the workers into the cell runs;
- ``artifacts``: atomic writes, an analysis unit's table, the way to a run's artifacts;
- ``views``: what the UI shows of a cell (``networks.html``, realizations as SVG);
- ``runs``: ``SweepStore``, which finds, creates, reconciles and closes the runs;
- ``store``: ``open_store``, the per-process cache of open stores, and ``OpenedSweep``;
- ``lease``: one driver per sweep, a lease with a heartbeat on the sweep's parent run;
- ``reader``: ``SweepReader``, a sweep read back in bulk (``load_runs``: its runs as a
  DataFrame);
- ``secrets``: credentials kept out of what is printed, logged and stored.

MLflow and pandas are imported only when a store is opened or a frame built, so that
importing this package (as the command line does) stays light.
"""

from .reader import SweepReader, load_runs

__all__ = ["SweepReader", "load_runs"]
