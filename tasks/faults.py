"""Fault injection for the reliability tests. ``REALSPACE_FAULT=point[:n]`` makes the
process SIGKILL itself the n-th time (default the first) it reaches ``point``, exactly as
a crash or an OOM kill would. Points: ``plan`` (planned, nothing opened), ``train`` (a
shard is training), ``trained`` (a shard's records are back, not yet logged),
``logging`` (one run of a shard logged, the rest not), ``analysis`` (an analysis unit
logged, the others not).

- ``REALSPACE_FAULT_MARK=file``: the fault fires once over all processes (the file
  records that it did): a Ray worker killed once, whose shard Ray then retries.
- ``point:raise``: raise instead, every time (a shard that fails every retry).
- ``point...@text``: only where the point's detail (for ``train``: the shard's
  parametrization) contains ``text``.

Unset (always, outside tests), it does nothing."""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def fault_point(name: str, detail: str = "") -> None:
    spec = os.environ.get("REALSPACE_FAULT")
    if not spec:
        return
    spec, _, where = spec.partition("@")
    point, _, count = spec.partition(":")
    if point != name or where not in detail:
        return
    if count == "raise":  # an exception every time (a shard that fails every retry)
        raise RuntimeError(f"injected fault at {name}")
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != int(count or 1):
        return
    mark = os.environ.get("REALSPACE_FAULT_MARK")
    if mark:
        try:
            os.close(os.open(mark, os.O_CREAT | os.O_EXCL))  # only the first process wins
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
