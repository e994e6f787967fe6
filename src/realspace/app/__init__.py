"""The application: what a user calls, above every layer it drives.

- ``service``: a sweep as two library calls (plan it, run it), the driver's lease;
- ``submit``: a sweep submitted to a Prefect server, its status and its cancellation;
- ``cli``: the ``realspace`` command.
"""
