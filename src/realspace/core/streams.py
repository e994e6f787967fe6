"""Many runs' random streams at once: the generator ``rng_for(seed, stream, *extra)``
gives, for every seed of a shard, without building a generator per seed.

``np.random.default_rng(SeedSequence(entropy))`` costs about 9 us, most of it in two
hashes that run word by word in Python-level loops; a shard of 4,096 tiny networks spent
four fifths of its set-up there. The hashes are fixed integer arithmetic (numpy's
SeedSequence, stream-compatible across numpy versions), so they run here on uint32 arrays
with one row per seed, and each seed's PCG64 state is set into one shared generator:

    pool  = SeedSequence's mix of the entropy words (4 words of 32 bits)
    s, i  = its generate_state(4, uint64) as two 128-bit numbers (seed, sequence)
    inc   = 2 i + 1,  state = ((inc + s) A + inc) mod 2^128        (PCG64's seeding step)

with A PCG64's multiplier. ``streams`` checks its first state against numpy's own
construction once per process and falls back to numpy's path if they ever differ.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["streams"]

# numpy/random/bit_generator.pyx (SeedSequence) and numpy/random/src/pcg64/pcg64.h
INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
MIX_MULT_L, MIX_MULT_R = 0xCA01F9DD, 0x4973F715
POOL_SIZE = 4
PCG_MULT = (2549297995355413924 << 64) | 4865540595714422341
MASK32, MASK128 = (1 << 32) - 1, (1 << 128) - 1


def _pool(entropy: np.ndarray) -> list[np.ndarray]:
    """SeedSequence's pool for each row of ``entropy`` (R, k) uint32 words, k <= 4."""
    assert entropy.shape[1] <= POOL_SIZE, "more words than the pool mixes in a second loop"
    h = INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal h
        value = value ^ np.uint32(h)
        h = (h * MULT_A) & MASK32
        value = value * np.uint32(h)
        return value ^ (value >> np.uint32(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.uint32(MIX_MULT_L) * x - np.uint32(MIX_MULT_R) * y
        return r ^ (r >> np.uint32(16))

    zero = np.zeros(len(entropy), np.uint32)
    pool = [hashmix(entropy[:, i] if i < entropy.shape[1] else zero) for i in range(POOL_SIZE)]
    for src in range(POOL_SIZE):
        for dst in range(POOL_SIZE):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    return pool


def _states(entropy: np.ndarray) -> list[dict]:
    """The PCG64 state of ``default_rng(SeedSequence(row))`` for each row of ``entropy``."""
    pool, h = _pool(entropy), INIT_B
    words = []
    for k in range(8):  # generate_state(4, np.uint64): 8 words of 32 bits, the pool cycled
        value = pool[k % POOL_SIZE] ^ np.uint32(h)
        h = (h * MULT_B) & MASK32
        value = value * np.uint32(h)
        words.append((value ^ (value >> np.uint32(16))).astype(np.uint64))
    # little-endian pairs of words: 64-bit numbers u0..u3; seed = u0:u1, sequence = u2:u3
    u = [(words[2 * j] | (words[2 * j + 1] << np.uint64(32))).tolist() for j in range(4)]
    out = []
    for u0, u1, u2, u3 in zip(*u, strict=True):
        inc = ((((u2 << 64) | u3) << 1) | 1) & MASK128
        state = ((inc + ((u0 << 64) | u1)) * PCG_MULT + inc) & MASK128
        out.append(
            {
                "bit_generator": "PCG64",
                "state": {"state": state, "inc": inc},
                "has_uint32": 0,
                "uinteger": 0,
            }
        )
    return out


@functools.cache
def _agrees() -> bool:
    # numpy promises these streams stay fixed; were that ever broken, numpy's path is taken
    entropy = [2**32 - 1, 3, 7]
    made = np.random.PCG64(np.random.SeedSequence(entropy)).state
    return _states(np.array([entropy], np.uint32))[0] == made


def streams(seeds: Sequence[int], stream: int, *extra: int) -> Iterator[np.random.Generator]:
    """For each seed in turn, a generator in the state of
    ``default_rng(SeedSequence([seed, stream, *extra]))`` (``problem.rng_for``): the same
    numbers, drawn in the same order.

    The generator is one object, set anew for each seed: draw what a seed needs before
    taking the next (a generator kept past its turn moves on with the next seed's stream).
    A seed outside [0, 2^32) (more than one entropy word) takes numpy's path, the others
    this one.
    """
    seeds = [int(s) for s in seeds]
    words = [int(stream), *map(int, extra)]
    fast = len(words) < POOL_SIZE and all(0 <= w <= MASK32 for w in words) and _agrees()
    one_word = [fast and 0 <= s <= MASK32 for s in seeds]
    states = iter(())
    if any(one_word):
        entropy = np.empty((sum(one_word), 1 + len(words)), np.uint32)
        entropy[:, 0] = [s for s, ok in zip(seeds, one_word, strict=True) if ok]
        entropy[:, 1:] = words
        states = iter(_states(entropy))
    bits = np.random.PCG64()
    rng = np.random.Generator(bits)
    for s, ok in zip(seeds, one_word, strict=True):
        if ok:
            bits.state = next(states)
            yield rng
        else:
            yield np.random.default_rng(np.random.SeedSequence([s, *words]))
