"""The driver's bookkeeping (realspace.sweep.tally): which cells are complete, what the
totals are, and how the sweep's parent run ends, against counts made by hand."""

import pytest

from realspace.core.spec import RunSpec
from realspace.sweep import plan as plan_module
from realspace.sweep.plan import Plan, PlannedCell
from realspace.sweep.summary import Failure
from realspace.sweep.tally import Analysed, Cells, ShardOutcome, Tally


def _cells(**sizes) -> Cells:
    """A plan of one cell per name, ``sizes`` its seeds (the name is the cell's target
    function's frequency parameter, so every cell differs)."""
    plan = Plan(
        tuple(
            PlannedCell.of(RunSpec(target="sin", target_params=(("freq", i + 1.0),)), range(n))
            for i, n in enumerate(sizes.values())
        )
    )
    cells = Cells.of(plan)
    cells.names = dict(zip(sizes, cells.planned, strict=True))  # name -> cell key
    return cells


def _outcome(keys, pieces=None, diverged=0, seconds=1.0, write=0.25, size=100, writer="h:1"):
    pieces = pieces or {}
    return ShardOutcome(keys, pieces, diverged, seconds, write, size, None, writer, (10.0, 20.0))


def test_cells_count_their_seeds_in_plan_order_and_name_each_once():
    cells = _cells(a=3, b=2)
    a, b = cells.names["a"], cells.names["b"]
    assert list(cells.planned) == [a, b] and cells.left == {a: 3, b: 2}
    assert cells.planned[a].spec.seed == 0  # seed 0 stands for the cell
    wanted = cells.wanted(lambda specs: {k: f"cell-{k}" for k in specs})
    assert wanted == {
        a: (f"cell-{a}", cells.planned[a].spec, 3),
        b: (f"cell-{b}", cells.planned[b].spec, 2),
    }


def test_pending_seeds_are_those_whose_keys_are_not_stored(monkeypatch):
    cells = _cells(a=3, b=2, c=1)
    a, b, c = (cells.names[n] for n in "abc")
    keys = {k: cells.planned[k].keys() for k in (a, b, c)}
    hashed = []
    real = plan_module._seeded_keys
    monkeypatch.setattr(plan_module, "_seeded_keys", lambda *x: hashed.append(1) or real(*x))
    # a: seeds 0 and 2 stored, with a key of a seed the plan no longer has; c: all stored
    stored = {a: {keys[a][0], keys[a][2], "stale"}, c: set(keys[c]), "gone": {"x"}}
    pending = cells.pending(stored)
    assert [(s.cell.key, tuple(s.seeds)) for s in pending] == [(a, (1,)), (b, (0, 1))]
    assert cells.left == {a: 1, b: 2, c: 0}
    assert len(hashed) == 2  # the cells with something stored; b is taken whole


def test_a_cell_is_complete_once_its_last_run_is_trained_and_not_before():
    cells = _cells(a=3, b=2, c=1)
    a, b, c = (cells.names[n] for n in "abc")
    cells.pending({a: set(cells.planned[a].keys()[:2]), c: set(cells.planned[c].keys())})
    assert cells.left == {a: 1, b: 2, c: 0}
    never = lambda k: False  # noqa: E731
    # c was complete before: a resumed execution's first close names it
    assert cells.complete([a, c], never) == [c]
    cells.trained(b, ["b/0"])
    assert cells.complete([b], never) == []
    cells.trained(b, ["b/1"])
    cells.trained(a, ["a/2"])
    assert cells.complete([b, a, b], never) == sorted([a, b])
    # a cell already FINISHED is not closed twice
    assert cells.complete([b, a], lambda k: k == a) == [b]


def test_the_tally_adds_outcomes_and_keeps_the_first_hopeless_error():
    tally = Tally()
    tally.add(_outcome(["a/0", "a/1"], diverged=1, seconds=2.0, write=0.5, size=300))
    tally.add(_outcome(["b/0"], seconds=3.0, write=0.25, size=50, writer="h:2"))
    tally.add(_outcome(["b/1"], seconds=1.0, write=0.25, size=50, writer="h:2"))
    assert (tally.trained, tally.diverged, tally.busy_s) == (4, 1, 6.0)
    assert (tally.write_s, tally.written) == (1.0, 400)
    assert tally.writers == {"h:1": [2, 0.5, 300], "h:2": [2, 0.5, 100]}
    assert tally.stopped is None
    tally.fail("s3", RuntimeError("flaky"), runs=5, hopeless=False)
    assert tally.stopped is None
    tally.fail("s4", OSError("disk full"), runs=2, hopeless=True)
    tally.fail("s5", OSError("disk full again"), runs=2, hopeless=True)
    assert tally.stopped == "disk full"
    assert [f.name for f in tally.failed] == ["s3", "s4", "s5"] and tally.failed[0].runs == 5


def test_the_span_runs_from_the_first_start_to_the_last_end():
    tally = Tally()
    assert tally.train_span_s == 0.0 and tally.first_shard_at == 0.0
    for span in [(5.0, 9.0), (3.0, 4.0), (6.0, 12.5)]:
        tally.add(ShardOutcome(["k"], {}, 0, 1.0, 0.0, 0, None, "h", span))
    assert tally.train_span_s == 9.5 and tally.first_shard_at == 3.0


def _summary(tally, runs=10, skipped=2, analysed=None):
    return tally.summary(
        skipped=skipped,
        analysed=analysed or Analysed(),
        experiment="e",
        parent_run="p",
        experiment_id="1",
        tracking_uri="sqlite:///x",
        runs=runs,
        shards=3,
    )


@pytest.mark.parametrize(
    "trained, failed_shard, failed_unit, status",
    [
        (8, False, False, "FINISHED"),  # every planned run is in the store
        (5, False, False, "KILLED"),  # runs left: stopped early or --max-shards
        (8, True, False, "FAILED"),
        (8, False, True, "FAILED"),
        (5, True, False, "FAILED"),  # a failure outranks runs left
    ],
)
def test_the_parent_run_ends_by_what_the_execution_left(trained, failed_shard, failed_unit, status):
    tally = Tally()
    tally.add(_outcome([f"k{i}" for i in range(trained)]))
    if failed_shard:
        tally.fail("s", RuntimeError("x"), runs=1, hopeless=False)
    analysed = Analysed(units=4, failed=[Failure("u", "boom")] if failed_unit else [])
    summary = _summary(tally, analysed=analysed)
    assert summary.remaining == 10 - 2 - trained
    assert summary.parent_status == status
    assert summary.complete == (status == "FINISHED")


def test_the_parent_metrics_are_the_summary_counts():
    tally = Tally()
    tally.add(_outcome(["a", "b", "c"], diverged=2))
    tally.fail("s", RuntimeError("x"), runs=1, hopeless=False)
    analysed = Analysed(units=4, waiting=1, failed=[Failure("u1", "x"), Failure("u2", "y")])
    summary = _summary(tally, runs=9, skipped=4, analysed=analysed)
    assert summary.parent_metrics(cells=6) == {
        "cells_total": 6,
        "runs_total": 9,
        "runs_trained": 3,
        "runs_remaining": 2,
        "runs_diverged": 2,
        "shards_failed": 1,
        "analysis_units_failed": 2,
        "wall_seconds": 0.0,
    }
    assert (summary.analysis_units, summary.analysis_waiting) == (4, 1)
