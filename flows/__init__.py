"""Prefect flows of realspace (shipped as realspace.flows).

The flow's process masks its log records from the start, as the tasks' do (see
realspace.tasks)."""

from realspace.tracking.secrets import mask_log_records

mask_log_records()
