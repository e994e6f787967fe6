"""One driver per sweep (realspace.tracking.lease) on a real embedded store: the states
of a lease (live, released, expired, its process dead), taking it atomically from many
threads at once, refusing with the holder named, waiting, the heartbeat, a lease taken
over, and two drivers creating a new sweep's parent at once."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from realspace.tracking.lease import (
    EXPIRY_S,
    LEASE_PARAM,
    LEASE_TAG,
    Holder,
    LeaseState,
    SweepBusy,
    acquire,
    lease_state,
    pid_alive,
    read_holder,
)
from realspace.tracking.runs import SweepStore

HOST = socket.gethostname()


def _gone_pid() -> int:
    """The pid of a process that ran and was reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _holder(**kw) -> Holder:
    base = dict(generation=1, owner="o", host=HOST, pid=os.getpid(), started="", since=1000.0)
    return Holder(**{**base, **kw})


def test_a_lease_is_live_until_released_expired_or_its_process_is_gone():
    live = _holder(heartbeat=1030.0)
    assert lease_state(live, now=1030.0 + EXPIRY_S - 1) is LeaseState.LIVE
    assert lease_state(live, now=1030.0 + EXPIRY_S + 1) is LeaseState.EXPIRED
    # no heartbeat yet: counted from when it was taken
    assert lease_state(_holder(), now=1000.0 + EXPIRY_S + 1) is LeaseState.EXPIRED
    assert lease_state(_holder(released=True), now=1001.0) is LeaseState.RELEASED
    # on the holder's host a dead process is seen at once, heartbeat or not
    dead = _holder(pid=_gone_pid(), heartbeat=1030.0)
    assert lease_state(dead, now=1031.0) is LeaseState.DEAD
    # on another host only the heartbeat tells (the pid means nothing here)
    far = _holder(host=HOST + "-elsewhere", pid=_gone_pid(), heartbeat=1030.0)
    assert lease_state(far, now=1031.0) is LeaseState.LIVE
    assert lease_state(far, now=1031.0 + EXPIRY_S) is LeaseState.EXPIRED


def test_pid_liveness_tells_exited_zombie_and_reused_pids():
    assert pid_alive(os.getpid())
    assert not pid_alive(_gone_pid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline and pid_alive(child.pid):
        time.sleep(0.05)  # exited, not reaped yet: a zombie, which is no holder
    assert not pid_alive(child.pid)
    child.wait()
    # the same pid, started at another time: a later process that reuses the number
    assert not pid_alive(os.getpid(), started="1")


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One embedded store for the module (a new one costs seconds of schema creation)."""
    return f"sqlite:///{tmp_path_factory.mktemp('lease') / 'mlruns.db'}"


@pytest.fixture
def parent(uri):
    """A new sweep's parent run in the module's store: (SweepStore, parent run id)."""
    import uuid

    store = SweepStore(uri, "lease-check")
    return store, store.find_or_create_parent(uuid.uuid4().hex, "lease-check", settle=0)


def _take_as(store, parent_id, holder: Holder, beat: float | None = None):
    """Write ``holder``'s generation as another driver would have."""
    store.client.log_param(parent_id, *holder.param())
    if beat is not None:
        import json

        tag = {"generation": holder.generation, "heartbeat": beat, "released": False}
        store.client.set_tag(parent_id, LEASE_TAG, json.dumps(tag))


def test_a_second_driver_is_refused_with_the_holder_named_then_takes_it_once_released(parent):
    store, pid = parent
    first = acquire(store.client, pid, "lease-check")
    try:
        with pytest.raises(SweepBusy) as refused:
            acquire(store.client, pid, "lease-check")
        text = str(refused.value)
        assert f"host {HOST}, pid {os.getpid()}, since " in text
        assert "last heartbeat 0 s ago" in text and "--wait" in text
        assert refused.value.holder.owner == first.holder.owner
    finally:
        first.release()
    assert read_holder(store.client, pid).released
    second = acquire(store.client, pid, "lease-check")
    second.release()
    assert second.holder.generation == first.holder.generation + 1
    params = store.client.get_run(pid).data.params
    assert sorted(params) == [f"{LEASE_PARAM}1", f"{LEASE_PARAM}2"]  # one per driver


def test_a_dead_or_silent_holder_is_taken_over_at_once(parent):
    store, pid = parent
    # a driver of this host, SIGKILLed: its heartbeat is fresh, its process gone
    _take_as(store, pid, _holder(pid=_gone_pid(), since=time.time()), beat=time.time())
    lease = acquire(store.client, pid, "lease-check")
    lease.release()
    assert lease.holder.generation == 2
    # a driver of another host whose heartbeat stopped EXPIRY_S ago
    old = time.time() - EXPIRY_S - 5
    _take_as(store, pid, _holder(generation=3, host="elsewhere", since=old), beat=old)
    lease = acquire(store.client, pid, "lease-check")
    lease.release()
    assert lease.holder.generation == 4
    # ... and one whose heartbeat is fresh holds it, though its pid means nothing here
    now = time.time()
    _take_as(store, pid, _holder(generation=5, host="elsewhere", pid=1, since=now), beat=now)
    with pytest.raises(SweepBusy, match="host elsewhere, pid 1, since"):
        acquire(store.client, pid, "lease-check")


def test_of_many_drivers_taking_a_free_lease_at_once_exactly_one_wins(parent):
    store, pid = parent
    # each thread its own client, as separate drivers have
    clients = [SweepStore(store.uri, "lease-check").client for _ in range(6)]
    gate = threading.Barrier(len(clients))
    won, refused = [], []

    def drive(client):
        gate.wait()
        try:
            won.append(acquire(client, pid, "lease-check"))
        except SweepBusy as e:
            refused.append(e.holder.owner)

    threads = [threading.Thread(target=drive, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(won) == 1 and len(refused) == len(clients) - 1
        assert set(refused) == {won[0].holder.owner}  # each refused naming the winner
        assert read_holder(store.client, pid).generation == 1
    finally:
        for lease in won:
            lease.release()


def test_the_heartbeat_renews_and_a_taken_over_lease_is_noticed(parent):
    store, pid = parent
    lost = []
    lease = acquire(store.client, pid, "lease-check", beat_s=0.2, on_lost=lost.append)
    first = read_holder(store.client, pid).heartbeat
    time.sleep(1.0)
    assert read_holder(store.client, pid).heartbeat > first  # the thread beats
    # another driver took generation 2 (this one looked dead to it)
    _take_as(store, pid, _holder(generation=2, host="elsewhere", since=time.time()))
    deadline = time.time() + 10
    while not lost and time.time() < deadline:
        time.sleep(0.1)
    assert lost and lost[0].host == "elsewhere" and lease.lost == lost[0]
    lease.release()  # marks nothing: the lease is not this driver's any more
    assert not read_holder(store.client, pid).released


def test_a_waiting_driver_starts_when_the_holder_releases(parent):
    store, pid = parent
    first = acquire(store.client, pid, "lease-check")
    threading.Timer(1.0, first.release).start()
    seen = []
    t = time.time()
    second = acquire(store.client, pid, "lease-check", wait=True, on_wait=seen.append, poll_s=0.2)
    second.release()
    assert 0.9 < time.time() - t < 10
    assert [h.owner for h in seen] == [first.holder.owner]  # said once whom it waits for
    assert second.holder.generation == 2


def test_two_drivers_creating_a_new_sweeps_parent_at_once_share_one(uri):
    stores = [SweepStore(uri, "parent-check") for _ in range(2)]
    gate = threading.Barrier(2)
    got = []

    def create(store):
        gate.wait()
        got.append(store.find_or_create_parent("key-2", "parent-check", settle=1.0))

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] == got[1]
    runs = stores[0].client.search_runs([stores[0].experiment_id], "")
    assert [r.info.run_id for r in runs] == [got[0]]  # the other one was deleted
