"""A shard's random streams set up at once (core/streams.py) are numpy's own: the same
generator state as ``default_rng(SeedSequence([seed, stream, *extra]))`` for every seed,
hence the same draws."""

import numpy as np
import pytest

from realspace.core import streams as streams_module
from realspace.core.problem import rng_for
from realspace.core.streams import _states, streams


def numpy_state(entropy) -> dict:
    return np.random.PCG64(np.random.SeedSequence([int(w) for w in entropy])).state


@pytest.mark.parametrize("words", [1, 2, 3, 4])
def test_the_seeding_arithmetic_is_numpys(words):
    """The hashes and PCG64's seeding step on arrays give numpy's states, word for word
    (entropy of 1 to 4 words, edge values included)."""
    rng = np.random.default_rng(words)
    entropy = rng.integers(0, 2**32, (300, words), dtype=np.uint64).astype(np.uint32)
    entropy[:3] = [[0] * words, [2**32 - 1] * words, [1] + [0] * (words - 1)]
    assert _states(entropy) == [numpy_state(row) for row in entropy]
    assert streams_module._agrees()  # so streams() takes this arithmetic, not numpy's path


SEEDS = [0, 1, 2, 17, 2**31, 2**32 - 1, 12345]
MIXED = [*SEEDS[:3], 2**32, *SEEDS[3:], 2**40 + 3]  # two take numpy's path, the rest not


@pytest.fixture
def arithmetic_calls(monkeypatch):
    """How many seeds each call of streams() set up by the arithmetic (not numpy's path)."""
    calls, states = [], streams_module._states
    monkeypatch.setattr(streams_module, "_states", lambda e: calls.append(len(e)) or states(e))
    return calls


@pytest.mark.parametrize("seeds", [SEEDS, MIXED])
@pytest.mark.parametrize("extra", [(), (7,), (0, 2**32 - 1), (1, 2, 3)])  # 4 words: numpy's
def test_streams_draw_what_rng_for_draws(seeds, extra, arithmetic_calls):

    def draws(rng):
        return np.concatenate([rng.standard_normal(3), rng.uniform(-2, 2, 2), rng.random(1)])

    got = [draws(rng) for rng in streams(seeds, 3, *extra)]
    want = [draws(rng_for(s, 3, *extra)) for s in seeds]
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert arithmetic_calls == ([len(SEEDS)] if len(extra) < 3 else [])


def test_streams_take_numpys_path_when_the_check_fails(monkeypatch):
    """Were numpy's seeding ever to change, the check sends every seed through numpy."""
    monkeypatch.setattr(streams_module, "_agrees", lambda: False)
    monkeypatch.setattr(streams_module, "_states", None)  # would raise if it were called
    got = [rng.standard_normal(2) for rng in streams([4, 5], 0)]
    np.testing.assert_array_equal(got, [rng_for(s, 0).standard_normal(2) for s in (4, 5)])


@pytest.mark.parametrize(
    "kw",
    [
        dict(target="teacher", d=2, sampling="uniform"),  # each seed its own points
        dict(target="sin", sampling="uniform", noise=0.1),  # points and noise, d = 1 sorted
        dict(target="teacher_labels", d=2, sampling="uniform", noise=0.1),  # label flips
        dict(target="sin"),  # a grid: one data set for every seed
        dict(target="spirals", d=2, n_classes=3),  # the problem's own draw
    ],
)
@pytest.mark.parametrize("seeds", [range(40), [*range(20), 2**33, *range(20, 40)]])
def test_a_shards_data_is_each_runs_own(kw, seeds, arithmetic_calls):
    """A worker's data for a shard (each seed's stream set up at once, shared sets made
    once) equals make_data of each run alone, bit for bit; a seed past 2^32 among them."""
    from realspace.core.problem import make_data
    from realspace.core.spec import RunSpec
    from realspace.train import _shard_data

    specs = [RunSpec(**kw, width=3, n_samples=20, seed=s) for s in seeds]
    for (X, y), spec in zip(_shard_data(specs), specs, strict=True):
        want = make_data(spec)
        np.testing.assert_array_equal(X, want[0])
        np.testing.assert_array_equal(y, want[1])
    assert arithmetic_calls == ([40] if specs[0].sampling == "uniform" else [])  # own data


def test_minibatches_follow_each_runs_batch_stream(arithmetic_calls):
    """Each run's minibatches: its permutation of epoch e from rng_for(seed, STREAM_BATCH,
    e), cut into n // batch_size batches, each sorted."""
    from realspace.core.problem import STREAM_BATCH
    from realspace.core.spec import RunSpec
    from realspace.train.inputs import Batches

    seeds = (0, 5, 2**33, 2**32 - 1)  # one on numpy's path
    specs = [RunSpec(target="sin", n_samples=20, batch_size=6, seed=s) for s in seeds]
    batches = Batches(specs, 20, "cpu")
    for t in range(8):  # three batches an epoch
        epoch, pos = divmod(t, 3)
        perms = [rng_for(s.seed, STREAM_BATCH, epoch).permutation(20) for s in specs]
        want = np.sort(np.stack(perms)[:, 6 * pos : 6 * (pos + 1)], axis=1)
        np.testing.assert_array_equal(batches.indices(t).numpy(), want)
    assert arithmetic_calls == [3, 3, 3]  # an epoch's orders at a time, three epochs
