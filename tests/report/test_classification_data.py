"""Classification targets: spirals, Gaussian mixtures, multiclass teacher labels, label
flips, and the rules RunSpec and the sweep file enforce on them."""

from __future__ import annotations

import numpy as np
import pytest
from factories import sweep_config

from realspace.core.problem import make_data, target_on, teacher_net
from realspace.core.spec import RunSpec, target_label
from realspace.core.targets import flip_labels, gaussian_mixture, spirals
from realspace.sweep.config import ConfigError, parse_config


def test_spiral_points_lie_on_their_arm_without_jitter():
    rng = np.random.default_rng(0)
    D, m, turns = 2.0, 3, 1.5
    x, label = spirals(600, m, D, rng, turns=turns, jitter=0.0)
    s = np.linalg.norm(x, axis=1) / (0.9 * D)  # the arm's parameter, recovered
    assert np.all((s >= 0) & (s <= 1))
    angle = np.arctan2(x[:, 1], x[:, 0])
    expected = 2 * np.pi * (turns * s + label / m)
    wrapped = np.angle(np.exp(1j * (angle - expected)))  # difference modulo 2 pi
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-9)
    assert np.bincount(label).tolist() == [200, 200, 200]  # balanced


def test_spirals_stay_in_the_square_with_jitter():
    x, label = spirals(2000, 2, 1.0, np.random.default_rng(1), jitter=0.5)
    assert np.abs(x).max() <= 1.0
    assert set(np.unique(label)) == {0, 1}


def test_mixture_class_means_match_the_stated_ones():
    rng = np.random.default_rng(2)
    D, m, spread, n = 1.0, 4, 0.05, 8000  # no point reaches the square's edge
    x, label = gaussian_mixture(n, m, D, rng, spread=spread)
    for j in range(m):
        pts = x[label == j]
        mu = 0.5 * D * np.array([np.cos(2 * np.pi * j / m), np.sin(2 * np.pi * j / m)])
        se = spread * D / np.sqrt(len(pts))
        np.testing.assert_array_less(np.abs(pts.mean(axis=0) - mu), 4 * se)
        np.testing.assert_allclose(pts.std(axis=0), spread * D, rtol=0.1)


def test_label_flips_have_the_stated_rate_and_land_uniformly_on_other_classes():
    rng = np.random.default_rng(3)
    m, noise, n = 4, 0.3, 40000
    label = rng.integers(0, m, n)
    noisy = flip_labels(label, m, noise, rng)
    flipped = noisy != label
    assert abs(flipped.mean() - noise) < 4 * np.sqrt(noise * (1 - noise) / n)
    shift = (noisy[flipped] - label[flipped]) % m  # 1..m-1, uniform
    counts = np.bincount(shift, minlength=m)[1:]
    expected = flipped.sum() / (m - 1)
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))


@pytest.mark.parametrize("target", ["spirals", "mixture"])
@pytest.mark.parametrize("m", [2, 3])
def test_make_data_gives_labels_in_the_loss_conventions(target, m):
    spec = RunSpec(target=target, d=2, n_classes=m, n_samples=90)
    x, y = make_data(spec)
    assert x.shape == (90, 2) and y.shape == (90,)
    expected = {-1.0, 1.0} if m == 2 else set(map(float, range(m)))
    assert set(np.unique(y)) == expected
    assert spec.loss == ("logistic" if m == 2 else "cross_entropy")
    assert spec.outputs == (1 if m == 2 else m)
    assert np.all(np.isnan(target_on(spec, x)))  # no target off its own points
    np.testing.assert_array_equal(make_data(spec)[1], y)  # reproducible from the spec
    # one data set per problem: the run's seed does not move it, the problem's seed does
    np.testing.assert_array_equal(make_data(RunSpec(**{**spec.to_dict(), "seed": 5}))[0], x)
    other = RunSpec(**{**spec.to_dict(), "teacher_seed": 1, "target_params": ()})
    assert not np.array_equal(make_data(other)[0], x)


def test_multiclass_teacher_labels_are_the_teachers_argmax():
    spec = RunSpec(target="teacher_labels", d=2, n_classes=3, n_samples=400, teacher_width=5)
    x, y = make_data(spec)
    g = teacher_net(spec)
    assert g.outputs == 3
    np.testing.assert_array_equal(y, np.argmax(g(x), axis=1))
    assert len(np.unique(y)) >= 2


def test_binary_runs_keep_their_keys_and_labels():
    spec = RunSpec(target="teacher_labels", d=2)
    assert "n_classes" not in spec.to_dict()
    assert RunSpec(target="spirals", d=2, n_classes=3).to_dict()["n_classes"] == 3
    assert target_label(RunSpec(target="spirals", d=2, n_classes=3, noise=0.1)) == "spirals(m=3)"
    assert target_label(RunSpec(target="mixture", d=2, teacher_seed=2)) == "mixture(s=2)"
    assert target_label(spec) == "teacher_labels(k=4,s=0,d=2)"


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(target="spirals", d=1), "input_dim must be 2"),
        (dict(target="sin", n_classes=3), "classification targets"),
        (dict(target="spirals", d=2, n_classes=1), "n_classes must be in \\[2, 10000\\], got 1"),
        (dict(target="spirals", d=2, target_params=(("spread", 0.1),)), "takes parameters"),
        (dict(target="mixture", d=2, target_params=(("spread", -1.0),)), "must be >= 0"),
        (dict(target="mixture", d=2, noise=1.0), "flip probability"),
    ],
)
def test_bad_classification_specs_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        RunSpec(**kw)


def test_a_sweep_file_takes_classes_and_per_target_noise_and_refuses_bad_ones_first():
    base = sweep_config(name="c", widths=[4], input_dim=2)
    cfg = parse_config(
        {**base, "targets": [{"name": "spirals", "n_classes": 3, "noise": 0.1}, {"name": "sin"}]}
    )
    assert cfg.targets[0].n_classes == 3 and cfg.targets[0].noise == 0.1
    with pytest.raises(ConfigError, match="classification targets"):
        parse_config({**base, "targets": [{"name": "sin", "n_classes": 3}]})
    with pytest.raises(ConfigError, match="input_dim must be 2"):
        parse_config({**base, "input_dim": 1, "targets": [{"name": "mixture"}]})


def test_the_gallery_draws_a_classifier_in_the_plane_by_its_regions(tmp_path):
    """A restricted 3-class network with no neurons is the linear classifier argmax (W x + e):
    its regions are those of the three affine scores, computed here directly."""
    import pandas as pd

    from realspace.report import plots
    from realspace.report.gallery import gallery_items, pick_gallery

    spec = RunSpec(
        target="mixture", d=2, n_classes=3, n_samples=30, width=2, parametrization="restricted"
    )
    W = np.array([[1.0, 0.0], [-1.0, 0.5], [0.0, -1.0]])
    e = np.array([0.1, 0.0, -0.2])
    params = {"a": np.zeros((2, 2)), "b": np.zeros(2), "c": np.zeros((2, 3)), "e": e, "w": W}
    row = {**spec.to_dict(), "run_key": "k", "problem": "p", "gap": 0.0, "accuracy": 0.5}
    row["target_params"] = {}
    df = pd.DataFrame([row])
    assert len(pick_gallery(df)) == 1  # a classifier in the plane is picked
    (item,) = gallery_items(df, {"k": params})
    assert item["kind"] == "regions"
    np.testing.assert_array_equal(item["predicted"], np.argmax(item["grid"] @ W.T + e, axis=1))
    x, y = make_data(spec)
    np.testing.assert_array_equal(item["points"], x)
    np.testing.assert_array_equal(item["labels"], y.astype(int))
    assert plots.gallery([item], tmp_path / "g.png").stat().st_size > 0
