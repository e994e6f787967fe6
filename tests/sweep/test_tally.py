"""The driver's bookkeeping (realspace.sweep.tally): which cells are complete, what the
totals are, and how the sweep's parent run ends, against counts made by hand."""

from types import SimpleNamespace

import pytest

from realspace.sweep.summary import Failure
from realspace.sweep.tally import Analysed, Cells, ShardOutcome, Tally


def _runs(cells: dict[str, int]):
    """PlannedRun stand-ins: ``cells`` cell name -> seeds; key "<cell>/<seed>"."""
    return [
        SimpleNamespace(key=f"{c}/{s}", spec=SimpleNamespace(cell=c, seed=s))
        for c, n in cells.items()
        for s in range(n)
    ]


def _cells(**sizes) -> Cells:
    return Cells.of(_runs(sizes), lambda spec: spec.cell)


def _outcome(keys, pieces=None, diverged=0, seconds=1.0, write=0.25, size=100, writer="h:1"):
    pieces = pieces or {}
    return ShardOutcome(keys, pieces, diverged, seconds, write, size, None, writer, (10.0, 20.0))


def test_cells_group_runs_in_plan_order_and_name_each_once():
    cells = _cells(a=3, b=2)
    assert cells.members == {"a": ["a/0", "a/1", "a/2"], "b": ["b/0", "b/1"]}
    assert cells.cell_of["b/1"] == "b" and cells.left == {"a": 3, "b": 2}
    assert cells.specs["a"].seed == 0  # the first run's spec stands for the cell
    wanted = cells.wanted(lambda specs: {k: f"cell-{k}" for k in specs})
    assert wanted == {"a": ("cell-a", cells.specs["a"], 3), "b": ("cell-b", cells.specs["b"], 2)}


def test_a_cell_is_complete_once_its_last_run_is_trained_and_not_before():
    cells = _cells(a=3, b=2, c=1)
    cells.have({"a/0", "a/1", "c/0"})  # stored by an earlier execution
    assert cells.left == {"a": 1, "b": 2, "c": 0}
    never = lambda k: False  # noqa: E731
    # c was complete before: the keys of a resumed execution name it
    assert cells.complete({"a/0", "c/0"}, never) == ["c"]
    cells.trained("b", ["b/0"])
    assert cells.complete(["b/0"], never) == []
    cells.trained("b", ["b/1"])
    cells.trained("a", ["a/2"])
    assert cells.complete(["b/1", "a/2"], never) == ["a", "b"]  # sorted
    # a cell already FINISHED is not closed twice
    assert cells.complete(["b/1", "a/2"], lambda k: k == "a") == ["b"]


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
