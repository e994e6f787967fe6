"""One table of a run's parameter ranges (realspace.core.constraints) drives both RunSpec's
checks and the sweep config's fields: each end of each interval is tested on both, and a
target's parameters are refused under the target's key before any work."""

import math

import pytest
from factories import sweep_config

from realspace.core.constraints import RUN_CONSTRAINTS, Interval
from realspace.core.spec import RunSpec
from realspace.sweep.config import ConfigError, parse_config

# where a RunSpec field sits in a sweep config (None: the config does not set it)
CONFIG_KEY = {
    "d": ("input_dim",),
    "width": ("widths", 0),
    "teacher_width": ("targets", 0, "teacher_width"),
    "n_samples": ("data", "n_samples"),
    "steps": ("optimizer", "steps"),
    "seed": ("seeds", 0),
    "teacher_seed": ("targets", 0, "teacher_seed"),
    "n_classes": ("targets", 0, "n_classes"),
    "batch_size": ("optimizer", "batch_size"),
    "plateau_patience": ("stopping", "plateau_patience"),
    "polish": ("optimizer", "polish"),
    "D": ("domain",),
    "lr": ("optimizer", "lr"),
    "init_scale": ("optimizer", "init_scale"),
    "weight_decay": ("weight_decay",),
    "noise": ("data", "noise"),
    "grad_tol": ("stopping", "grad_tol"),
    "plateau_rel_tol": ("stopping", "plateau_rel_tol"),
    "momentum": ("optimizer", "momentum"),
    "beta1": ("optimizer", "beta1"),
    "beta2": ("optimizer", "beta2"),
}


def _edges(interval: Interval):
    """(value, inside?) at each bounded end: the end itself and one step beyond it."""
    step = 1 if interval.kind is int else None
    out = []
    for end, closed, outward in (
        (interval.low, interval.closed in ("both", "left"), -1),
        (interval.high, interval.closed in ("both", "right"), +1),
    ):
        if end is None:
            continue
        beyond = end + outward * step if step else math.nextafter(end, outward * math.inf)
        inward = end - outward * step if step else math.nextafter(end, -outward * math.inf)
        out += [(end, closed), (beyond, False), (inward, True)]
    if interval.kind is float:
        out += [(math.nan, False), (math.inf, False)]
    return out


CASES = [
    (name, value, inside)
    for name, interval in RUN_CONSTRAINTS.items()
    for value, inside in _edges(interval)
]


def _spec(name, value):
    # a classification target for n_classes > 2; a teacher where its width is the point
    extra = {"target": "spirals", "d": 2} if name == "n_classes" else {}
    if name == "d":
        extra = {"n_samples": 4, "sampling": "uniform"}
    return RunSpec(**{**extra, name: value})


@pytest.mark.parametrize("name, value, inside", CASES)
def test_run_specs_take_exactly_the_tables_intervals(name, value, inside):
    if inside:
        assert getattr(_spec(name, value), name) == value
    else:
        with pytest.raises(ValueError, match=f"{name} must be "):
            _spec(name, value)


def _doc(name, value):
    doc = sweep_config()
    if name == "n_classes":
        doc.update(targets=[{"name": "spirals"}], input_dim=2)
    if name == "d":
        doc["data"] = {"sampling": "uniform", "n_samples": 4}
    key = CONFIG_KEY[name]
    if key == ("seeds", 0):
        doc["seeds"] = [value]
    elif key == ("widths", 0):
        doc["widths"] = [value]
    elif key[0] == "targets":
        doc["targets"][0][key[2]] = value
    elif len(key) == 2:
        doc.setdefault(key[0], {})[key[1]] = value
    else:
        doc[key[0]] = value
    return doc


def _key_path(key) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key).lstrip(".")


@pytest.mark.parametrize("name, value, inside", CASES)
def test_the_config_takes_exactly_the_tables_intervals_and_names_the_key(name, value, inside):
    doc = _doc(name, value)
    if inside:
        parse_config(doc)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert _key_path(CONFIG_KEY[name]) in str(err.value), str(err.value)


# The ranges as the README and docs/science.md state them, written out here so that the
# tests above (which read the table) cannot pass on a wrong table: a count of neurons,
# samples, steps or input dimensions is positive; seeds are int64; a probability of a
# label flip, a learning rate's momentum and Adam's betas lie in [0, 1) (an average that
# never decays is no average); lr, D and the initial scale are positive.
STATED = {
    "d": "in (0, 10000]",
    "width": "in (0, 1048576]",
    "teacher_width": "in (0, 1048576]",
    "n_samples": "in (0, 2147483647]",
    "steps": "in (0, 1000000000]",
    "seed": "in [0, 9223372036854775807]",
    "teacher_seed": "in [0, 9223372036854775807]",
    "n_classes": "in [2, 10000]",
    "batch_size": "in [0, 2147483647]",
    "plateau_patience": "in [0, 1000000000]",
    "polish": "in [0, 1000000000]",
    "D": "> 0",
    "lr": "> 0",
    "init_scale": "> 0",
    "weight_decay": ">= 0",
    "noise": ">= 0",
    "grad_tol": ">= 0",
    "plateau_rel_tol": ">= 0",
    "momentum": "in [0, 1)",
    "beta1": "in [0, 1)",
    "beta2": "in [0, 1)",
}


def test_the_table_states_the_documented_ranges():
    assert {k: v.describe() for k, v in RUN_CONSTRAINTS.items()} == STATED
    assert {k: v.kind for k, v in RUN_CONSTRAINTS.items() if v.kind is float} == dict.fromkeys(
        ["D", "lr", "init_scale", "weight_decay", "noise", "grad_tol", "plateau_rel_tol",
         "momentum", "beta1", "beta2"], float
    )  # fmt: skip


def test_every_interval_end_is_in_its_message():
    assert RUN_CONSTRAINTS["width"].describe() == "in (0, 1048576]"
    assert RUN_CONSTRAINTS["momentum"].describe() == "in [0, 1)"
    assert RUN_CONSTRAINTS["lr"].describe() == "> 0"
    assert RUN_CONSTRAINTS["noise"].describe() == ">= 0"
    assert Interval(float, None, 3.0, "neither").describe() == "< 3"
    assert RUN_CONSTRAINTS["n_classes"].field() == {"ge": 2, "le": 10_000}
    assert RUN_CONSTRAINTS["lr"].field() == {"gt": 0, "allow_inf_nan": False}
    with pytest.raises(ValueError, match="closed must be"):
        Interval(int, 0, 1, "open")


@pytest.mark.parametrize(
    "target, params, says",
    [
        ({"name": "spirals"}, {"arms": 3.0}, "takes parameters ['jitter', 'turns'], got ['arms']"),
        ({"name": "mixture"}, {"spread": -0.1}, "parameter spread must be >= 0"),
        ({"name": "sin"}, {"nope": 1.0}, "'sin' parameters {'nope': 1.0}"),
    ],
)
def test_a_targets_parameters_are_refused_under_its_key(target, params, says):
    doc = sweep_config(targets=[{"name": "sin"}, {**target, "params": params}], input_dim=2)
    if target["name"] == "sin":
        doc["input_dim"] = 1
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert "targets[1]" in str(err.value) and says in str(err.value), str(err.value)
