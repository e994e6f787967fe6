"""One driver per sweep: a lease on the sweep's parent run.

A sweep started twice (two terminals, or a scheduler restarting a job whose first copy
still runs) would train everything twice; the store stays correct (every write is
idempotent) but the work and the wall time double. So a driver takes the sweep's lease
before it starts any work, keeps it alive with a heartbeat, and gives it back when it
ends. A second driver of the same sweep is refused (``SweepBusy``, naming the live one)
or waits for it.

Where the lease lives, and why there: on the parent run, through MLflow's own API, so
that the embedded store and an MLflow server hold it alike, in the database they already
have, and the UI shows it on the run a user looks at. No file beside the store (a server
has no "beside"), no extra service.

- **Generation n is taken by logging the param ``realspace.lease.<n>``** (value: the
  holder as JSON: owner id, host, pid, the process's start time, since when). MLflow
  params are write-once: ``log_param`` inserts under the database's unique key (run,
  param key) and refuses a different value for a key that exists, on SQLite (writers
  serialized) and behind a server on PostgreSQL alike. Of two drivers that both find
  generation n free, exactly one logs n + 1; the other is refused by the database, reads
  again and finds it held. A repeated request (a client retry over HTTP) logs the same
  value and succeeds: the same holder. This is a compare-and-set, not a timing
  assumption.
- **The holder's liveness is the tag ``realspace.lease``** (generation, last heartbeat,
  released), rewritten every ``BEAT_S`` by a thread of the driver and set to released
  when it ends (normally or by an exception). A generation is free when it is released,
  when its heartbeat is older than ``EXPIRY_S`` (a holder killed by SIGKILL, or a host
  lost), or, on the holder's own host, at once when its process is gone (its pid no
  longer runs the process that took the lease). Heartbeats are the holder's clock read by
  the taker's: hosts are assumed within a few seconds of each other (NTP), far below the
  expiry.
- **Losing the lease.** A holder cut off from the store for longer than the expiry may
  find its generation taken over; its next heartbeat sees that and the driver stops
  (``on_lost``). Until then two drivers may write, which costs work but not data: every
  write of a sweep is idempotent.

Each acquisition is a new generation, so the parent's params list the drivers that ran
the sweep, one param each.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum

__all__ = [
    "BEAT_S",
    "EXPIRY_S",
    "LEASE_PARAM",
    "LEASE_TAG",
    "Holder",
    "Lease",
    "LeaseState",
    "SweepBusy",
    "acquire",
    "describe",
    "lease_state",
    "read_holder",
]

log = logging.getLogger(__name__)

LEASE_PARAM = "realspace.lease."  # + generation: the holder, written once
LEASE_TAG = "realspace.lease"  # the current generation's heartbeat and release
BEAT_S = 10.0  # heartbeat period
EXPIRY_S = 40.0  # a heartbeat older than this: the holder is gone (< 60 s: reruns resume soon)
POLL_S = 5.0  # how often a waiting driver looks again


class SweepBusy(RuntimeError):
    """Another driver holds the sweep's lease (``holder``)."""

    def __init__(self, message: str, holder: Holder):
        super().__init__(message)
        self.holder = holder


class LeaseState(Enum):
    """What a generation of the lease is now."""

    LIVE = "live"  # held by a running driver
    RELEASED = "released"  # given back at the driver's end
    EXPIRED = "expired"  # no heartbeat for EXPIRY_S
    DEAD = "dead"  # its process is gone (seen on the holder's own host)


@dataclass(frozen=True)
class Holder:
    """A driver that took a generation of the lease, and what the store says of it."""

    generation: int
    owner: str  # random id of one acquisition
    host: str
    pid: int
    started: str  # the process's start time as the kernel counts it ("" where unknown)
    since: float  # when it took the lease (seconds since the epoch, its clock)
    heartbeat: float = 0.0  # last heartbeat (its clock); `since` before the first
    released: bool = False

    def param(self) -> tuple[str, str]:
        """The param that takes this generation: key and value."""
        ident = {k: getattr(self, k) for k in ("owner", "host", "pid", "started", "since")}
        return f"{LEASE_PARAM}{self.generation}", json.dumps(ident, sort_keys=True)


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot (Linux), which tells a
    process from a later one given the same pid; "" where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # fields after the command (which may hold spaces): state is the 3rd field,
            # starttime the 22nd
            fields = fh.read().rsplit(")", 1)[1].split()
        return "" if fields[0] == "Z" else fields[19]  # a zombie has exited
    except (OSError, IndexError):
        return ""


def pid_alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` runs on this host and, when ``started`` is known, is the
    process that started then (not a later one that reuses the pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if not os.path.isdir("/proc/self"):
        return True  # no /proc: the pid is all there is to go by
    now = _process_start(pid)  # "" when it has exited meanwhile, or is a zombie
    return bool(now) and (not started or now == started)


def lease_state(
    holder: Holder,
    now: float | None = None,
    host: str | None = None,
    alive: Callable[[int, str], bool] = pid_alive,
    expiry: float = EXPIRY_S,
) -> LeaseState:
    """The state of ``holder``'s generation seen from ``host`` (default: this one) at
    ``now``; ``alive(pid, started)`` asks whether a process of this host still runs."""
    now = time.time() if now is None else now
    if holder.released:
        return LeaseState.RELEASED
    if holder.host == (host or socket.gethostname()) and not alive(holder.pid, holder.started):
        return LeaseState.DEAD
    if now - max(holder.heartbeat, holder.since) > expiry:
        return LeaseState.EXPIRED
    return LeaseState.LIVE


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def describe(holder: Holder, now: float | None = None) -> str:
    """The holder in words: host, pid, since when, last heartbeat."""
    now = time.time() if now is None else now
    beat = max(holder.heartbeat, holder.since)
    return (
        f"host {holder.host}, pid {holder.pid}, since {_clock(holder.since)} "
        f"({now - holder.since:.0f} s ago), last heartbeat {now - beat:.0f} s ago"
    )


def busy_message(sweep: str, holder: Holder, now: float | None = None) -> str:
    """Why a second driver of ``sweep`` does not start, and what to do."""
    return (
        f"sweep {sweep!r} is being run by another driver ({describe(holder, now)}); "
        f"nothing was started. Wait for it with `realspace sweep --wait`, or stop it; "
        f"a driver that died is taken over once its heartbeat is {EXPIRY_S:.0f} s old "
        "(at once on its own host)"
    )


def read_holder(client, parent_id: str) -> Holder | None:
    """The latest generation of the parent's lease (None: never taken)."""
    run = client.get_run(parent_id)
    gens = {
        int(k.removeprefix(LEASE_PARAM)): v
        for k, v in run.data.params.items()
        if k.startswith(LEASE_PARAM) and k.removeprefix(LEASE_PARAM).isdigit()
    }
    if not gens:
        return None
    gen = max(gens)
    ident = json.loads(gens[gen])
    holder = Holder(
        generation=gen,
        owner=ident["owner"],
        host=ident["host"],
        pid=int(ident["pid"]),
        started=ident.get("started", ""),
        since=float(ident["since"]),
    )
    try:
        beat = json.loads(run.data.tags.get(LEASE_TAG, "{}"))
    except ValueError:
        beat = {}
    if beat.get("generation") != gen:  # taken, no heartbeat of its own yet
        return holder
    return Holder(
        **{**asdict(holder), "heartbeat": float(beat["heartbeat"]), "released": beat["released"]}
    )


def _take(client, parent_id: str, holder: Holder) -> bool:
    """Log the param of ``holder``'s generation: True if it is ours now, False when
    another driver took that generation first."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode

    key, value = holder.param()
    try:
        client.log_param(parent_id, key, value)
    except MlflowException as e:
        if e.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE):
            found = read_holder(client, parent_id)
            if found is not None and found.generation >= holder.generation:
                return False  # the param is there with another owner: lost the race
        raise
    return True


def _write_beat(client, parent_id: str, holder: Holder, released: bool = False) -> None:
    beat = {"generation": holder.generation, "heartbeat": time.time(), "released": released}
    client.set_tag(parent_id, LEASE_TAG, json.dumps(beat, sort_keys=True))


class Lease:
    """A generation of a sweep's lease held by this process: its heartbeat thread, and
    ``release``. Use as a context manager, or call ``release`` in a ``finally``."""

    def __init__(
        self,
        client,
        parent_id: str,
        holder: Holder,
        beat_s: float = BEAT_S,
        on_lost: Callable[[Holder], None] | None = None,
    ):
        self.client, self.parent_id, self.holder = client, parent_id, holder
        self.beat_s = beat_s
        self.on_lost = on_lost
        self.lost: Holder | None = None  # who took it over, if anyone did
        self._released = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-lease", daemon=True)

    def start(self) -> Lease:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.beat_s):
            try:
                self.beat()
            except Exception as e:  # noqa: BLE001 - a store away for a while: beat again later
                log.warning("sweep lease heartbeat failed (will retry): %s", e)
            if self.lost is not None:
                return

    def beat(self) -> bool:
        """Renew the heartbeat; False (and ``on_lost`` called) when another driver has
        taken a later generation meanwhile."""
        now = read_holder(self.client, self.parent_id)
        if now is None or now.generation != self.holder.generation:
            self.lost = now
            log.error("sweep lease taken over by another driver: %s", now and describe(now))
            if self.on_lost is not None:
                self.on_lost(now)
            return False
        _write_beat(self.client, self.parent_id, self.holder)
        return True

    def release(self) -> None:
        """Stop the heartbeat and mark the generation released (unless it was taken over).
        Never raises: a release that cannot reach the store leaves the lease to expire.
        A second call does nothing."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.beat_s + 30)
        if self.lost is not None:
            return
        try:
            now = read_holder(self.client, self.parent_id)
            if now is not None and now.generation == self.holder.generation:
                _write_beat(self.client, self.parent_id, self.holder, released=True)
        except Exception as e:  # noqa: BLE001 - the lease then expires on its own
            log.warning("could not release the sweep lease (it expires on its own): %s", e)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(
    client,
    parent_id: str,
    sweep: str,
    wait: bool = False,
    on_wait: Callable[[Holder], None] | None = None,
    on_lost: Callable[[Holder], None] | None = None,
    poll_s: float = POLL_S,
    beat_s: float = BEAT_S,
) -> Lease:
    """Take the lease of the sweep whose parent run is ``parent_id`` and start its
    heartbeat. Raises SweepBusy naming the live holder, or with ``wait`` waits until it
    is free (``on_wait(holder)`` each time a new holder is found waiting)."""
    me = dict(
        owner=uuid.uuid4().hex[:12],
        host=socket.gethostname(),
        pid=os.getpid(),
        started=_process_start(os.getpid()),
    )
    seen = None
    while True:
        current = read_holder(client, parent_id)
        if current is None or lease_state(current) is not LeaseState.LIVE:
            gen = (current.generation if current else 0) + 1
            mine = Holder(generation=gen, since=time.time(), **me)
            if _take(client, parent_id, mine):
                _write_beat(client, parent_id, mine)
                return Lease(client, parent_id, mine, beat_s, on_lost).start()
            continue  # another driver took that generation: look at it
        if not wait:
            raise SweepBusy(busy_message(sweep, current), current)
        if seen != current.generation:
            seen = current.generation
            if on_wait is not None:
                on_wait(current)
        time.sleep(poll_s)
