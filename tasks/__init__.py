"""Prefect tasks of realspace: thin adapters over the library (shipped as realspace.tasks).

Every process that runs one (a Ray worker, a flow's own process) masks its log records
from the start: a task's errors and warnings reach Prefect's API handler, which stores
them on the server, and they may carry a tracking URI's password."""

from realspace.tracking.secrets import mask_log_records

mask_log_records()
