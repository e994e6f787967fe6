"""The "graph" kernel: the trainer's whole update compiled into one graph (torch.compile;
a CUDA graph on CUDA) trains what the step taken operation by operation trains, on every
path, in a handful of launches.

Compared in float64, where the two orders of the same operations agree to about 1e-12;
each path compiles once per process (a few seconds)."""

import dataclasses

import numpy as np
import pytest
import torch

from realspace.train import RunSpec, TrainOptions, train_shard
from realspace.train.kernels import choose_objective
from realspace.train.state import RunStatus

PATHS = {
    "d=1 dense": dict(target="sin", d=1),  # n N small: dense inside the graph
    "prefix": dict(target="sin", d=1, width=40, n_samples=256),  # prefix sums there
    "dense": dict(target="teacher", d=2, sampling="uniform"),
    "intrinsic": dict(target="sin", parametrization="restricted", restricted_method="intrinsic"),
    "intrinsic, prefix": dict(  # the chart's map beside prefix sums
        target="sin",
        parametrization="restricted",
        restricted_method="intrinsic",
        width=40,
        n_samples=256,
    ),
    "projection": dict(target="sin", parametrization="restricted", restricted_method="projection"),
    "cross-entropy": dict(target="spirals", d=2, n_classes=3),
    "logistic": dict(target="teacher_labels", d=2, sampling="uniform"),
    "gaussian": dict(target="gaussian", d=3, teacher_width=2, bias=False, train_output=False),
}
F64 = torch.float64


def shard(path, networks=6, steps=120, **kw):
    spec = dict(width=5, n_samples=24) | PATHS[path] | dict(steps=steps, lr=0.02) | kw
    return [RunSpec(**spec, seed=s) for s in range(networks)]


def assert_same_training(graph, eager, tol=1e-9):
    """Same statuses, step counts and loss histories; end points equal to rounding."""
    np.testing.assert_array_equal(graph.status, eager.status)
    np.testing.assert_array_equal(graph.steps, eager.steps)
    np.testing.assert_array_equal(graph.history_step, eager.history_step)
    np.testing.assert_allclose(graph.history_loss, eager.history_loss, rtol=tol, atol=tol)
    for k, v in eager.params.items():
        np.testing.assert_allclose(graph.params[k], v, rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("path", list(PATHS))
def test_the_graph_trains_what_the_eager_step_trains(path):
    specs = shard(path)
    eager = train_shard(specs, TrainOptions(dtype=F64))
    graph = train_shard(specs, TrainOptions(dtype=F64, kernel="graph"))
    assert_same_training(graph, eager)


def test_stopping_rules_and_divergence_take_effect_inside_the_graph():
    """Runs that converge, plateau, diverge and run out of budget at different steps in
    one shard: each stops where the eager step stops it (the rules are part of the
    graph, decided on the device)."""
    base = dict(PATHS["d=1 dense"], width=5, n_samples=24, lr=0.02)
    specs = [
        RunSpec(**base, seed=0, steps=300, grad_tol=2e-2),  # converges (step 46)
        RunSpec(**base, seed=1, steps=300, plateau_patience=5, plateau_rel_tol=0.5),  # step 5
        RunSpec(**base | {"lr": 1e200}, seed=2, steps=40),  # diverges: steps of 1e200
        RunSpec(**base, seed=3, steps=70),  # budget
    ]
    eager = train_shard(specs, TrainOptions(dtype=F64))
    graph = train_shard(specs, TrainOptions(dtype=F64, kernel="graph"))
    assert {RunStatus(s) for s in eager.status} == {
        RunStatus.CONVERGED,
        RunStatus.PLATEAU,
        RunStatus.DIVERGED,
        RunStatus.BUDGET,
    }
    assert_same_training(graph, eager)
    np.testing.assert_array_equal(graph.diverged_step, eager.diverged_step)


@pytest.mark.slow  # three recompilations: about 35 s
def test_shards_of_other_sizes_reuse_the_graph_and_still_agree():
    """A cell's last shard is smaller and another width has more parameters: the graph
    is recompiled with dynamic shapes, and still trains what the eager step trains."""
    for networks, width in ((3, 5), (7, 5), (4, 9)):
        specs = shard("d=1 dense", networks=networks, width=width, steps=40)
        eager = train_shard(specs, TrainOptions(dtype=F64))
        graph = train_shard(specs, TrainOptions(dtype=F64, kernel="graph"))
        assert_same_training(graph, eager)


def launched_per_step(path: str, kernel: str) -> float:
    """Operations per step the profiler sees: aten operations at the top level, or called
    out to by a compiled graph (the graph's own fused loops are not aten operations)."""
    from torch.profiler import ProfilerActivity, profile

    def launched(e):
        outer = e.cpu_parent
        return e.name.startswith("aten::") and (outer is None or outer.name.startswith("## Call"))

    train_shard(shard(path, steps=4), TrainOptions(kernel=kernel))  # compiled here
    counts = []
    for steps in (20, 40):  # merges every 10 steps: two of them in the difference
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_shard(shard(path, steps=steps), TrainOptions(kernel=kernel))
        counts.append(sum(map(launched, prof.events())))
    return (counts[1] - counts[0]) / 20


def test_a_graph_step_launches_a_few_operations_not_a_hundred():
    """The step runs as the compiled graph, not operation by operation."""
    eager, graph = launched_per_step("d=1 dense", "auto"), launched_per_step("d=1 dense", "graph")
    assert eager > 100 and graph < 10, (eager, graph)


def test_the_projection_is_compiled_too_between_its_merges():
    """Projected runs: the projection of the steps without merges is a graph of its own;
    the merge steps (every 10th) stay eager. A third of the eager step's operations at
    most, on average."""
    eager, graph = launched_per_step("projection", "auto"), launched_per_step("projection", "graph")
    assert eager > 300 and graph <= eager / 3, (eager, graph)


def test_the_compiled_update_writes_none_of_its_inputs(monkeypatch):
    """torch replays a compiled function as a CUDA graph only if it mutates none of its
    inputs (else it skips the graph, with a log line and no error): the update returns
    the loss history's entries and the caller writes them. Checked on a CPU on each path:
    the function the graph kernel compiles, called as it is, bumps the version counter
    of none of the tensors it is given (any in-place write does: x[i] = v, x |= m,
    out=x, through a view)."""
    from realspace.train import loop

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            return [obj]
        if dataclasses.is_dataclass(obj):
            obj = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
        if isinstance(obj, dict):
            obj = list(obj.values())
        if isinstance(obj, (list, tuple)):
            return [t for item in obj for t in tensors(item)]
        return []

    written = []

    def checked(fn, device):
        def run(*args):
            before = [(t, t._version) for t in tensors(args)]
            out = fn(*args)
            if fn is loop._update:
                written.extend(t.shape for t, v in before if t._version != v)
                checked.calls += 1
            return out

        return run

    checked.calls = 0
    monkeypatch.setattr(loop, "compiled", checked)
    for path in ("d=1 dense", "prefix", "intrinsic", "projection", "cross-entropy"):
        train_shard(shard(path, steps=3), TrainOptions(kernel="graph"))
    assert checked.calls == 5 * 3 and written == []


def test_the_graph_kernel_takes_the_objective_auto_would_whole():
    cpu = torch.device("cpu")
    names = {
        path: choose_objective("graph", shard(path, networks=1)[0], cpu)
        for path in ("d=1 dense", "prefix", "intrinsic", "dense", "cross-entropy", "gaussian")
    }
    assert {kernel for _, kernel in names.values()} == {"graph"}
    names = {
        path: (getattr(f, "func", f).__name__, getattr(f, "keywords", {}))
        for path, (f, _) in names.items()
    }
    assert names["prefix"] == ("mse_objective_1d", {})  # n N = 10,240 > 8 (256 + 320)
    # dense, neuron-major, not sliced into chunks: 120 <= 8 (24 + 5 log2 24)
    assert names["d=1 dense"] == names["dense"] == ("mse_objective", {"neuron_major": True})
    assert names["intrinsic"] == names["dense"]  # the chart's runs follow the same rule
    assert names["cross-entropy"] == ("cross_entropy_objective", {"neuron_major": True})
    assert names["gaussian"] == ("gaussian_objective", {})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_graph_trains_what_the_cpu_trains():
    """On CUDA the update is replayed as a CUDA graph (torch skips the graph, with only a
    log line, for a function it cannot capture: the counter says so) and trains what the
    CPU's eager step trains."""
    from torch._dynamo.utils import counters

    specs = shard("dense", networks=16, steps=60)
    cpu = train_shard(specs, TrainOptions(dtype=F64, device="cpu"))
    counters.clear()
    gpu = train_shard(specs, TrainOptions(dtype=F64, device="cuda", kernel="graph"))
    assert counters["inductor"]["cudagraph_skips"] == 0
    assert_same_training(gpu, cpu, tol=1e-8)
