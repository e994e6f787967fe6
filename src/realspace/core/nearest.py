"""The pairs of 1-D networks closest in d_W, without evaluating d_W on every pair.

``closest_pairs(nets, D, k)``: the first k of all n (n - 1) / 2 pairs (d_W, i, j), i < j,
sorted (ties in d_W by i, then j), every d_W from ``sobolev_distance`` itself: the brute
force's rows to the last bit. A pair gets its d_W only if a lower bound on it is at most
r = T + margin, T the k-th smallest d_W so far (inf before k), margin the bounds' rounding.

Bounds (d = 1, Q = [-D, D]): |f(x) - g(x)| <= sup|f - g| anywhere, |f'(y) - g'(y)| <= sup
|f' - g'| off the kinks of both; the exact computation merges kinks closer than 1e-12 D,
so slope points keep (2 N + 4) 1e-12 D (``clearance``) from the kinks compared, past any
merged cluster. First, features: f at 9 points, f' between them and at quantiles of the
kinks (weighted by the jumps |c a|), compared in L-inf. Networks trained towards one
target nearly share their kinks, and two whose kinks differ are at d_W about the largest
jump (f' differs by it on the sliver between): only a point in the sliver tells, so the
points follow the kinks down the tree. Then per pair: f - g at both kink sets and the ends,
f' - g' on the pieces between (wider than twice the clearance): d_W up to rounding.

Search: a tree. A node splits on the feature where fewest pairs across lie within r (on
a sample; before any r, at the widest gap); a pair across is bounded only if its values
there lie within r (a window of the sorted values), a pair in a leaf always. Children go
first, and a sample of the networks before all, so r is small by the windows. d_W in
increasing order of the second bound, r falling as it goes.

Cost: O(n log n) features (O(N) each), the pairs bounded, one d_W (0.2 ms) per pair whose
second bound is <= r: 10^5 networks of width 8 trained-like (kinks moved) in 10-20 s, a
few hundred d_W, memory linear in n. Quadratic where most pairs are as close as the k-th
(many parametrizations of one realization), not for exact copies: of a set of copies
only the k + 1 lowest indices can appear (a later one's pairs tie with an earlier one's
and sort after k of them), and once k pairs are at d_W = 0 only pairs before the last in
(i, j) order may enter. In d >= 2 (d_W an estimate) or for mixed shapes, every pair.
"""

from __future__ import annotations

import bisect
from itertools import combinations

import numpy as np

from .distances import sobolev_distance
from .nets import ShallowNet, check_domain

__all__ = ["closest_pairs", "bound_features", "pair_bounds"]

LEAF = 32  # networks per leaf, every pair of which is bounded
GRID = 9  # value points on Q (ends included); the slope points lie between them
QUANTILES = 24  # slope points per node at quantiles of its kinks (at least N)
SAMPLE = 1024  # networks searched first, for a first radius (cells over 4 SAMPLE)
SPLIT_SAMPLE = 4096  # networks of a node that choose its split
PAIR_CHUNK = 1 << 18  # pairs bounded at once
_MERGE = 1e-12  # sup_norms_1d merges kinks closer than this times D


def closest_pairs(nets: list[ShallowNet], D: float, k: int, stats: dict | None = None):
    """The k smallest (d_W, i, j), i < j, over the pairs of ``nets``, sorted: the list of
    sorting every pair. ``stats``, a dict, receives the pairs of the search (d = 1)
    ``bounded`` by features, ``refined`` by their kinks and ``evaluated`` (exact d_W)."""
    nets = list(nets)
    n = len(nets)
    if k <= 0 or n < 2:
        return []
    D = check_domain(D)
    if len({(net.dim, net.outputs) for net in nets}) > 1 or nets[0].dim != 1:
        return _brute_force(nets, D, k)
    search = _Search(nets, D, k)
    rows = np.flatnonzero(list(_first_copies(nets, k)))
    if rows.size > 4 * SAMPLE:
        search.node(np.sort(np.random.default_rng(0).choice(rows, SAMPLE, replace=False)))
    search.node(rows)
    if stats is not None:
        stats.update(bounded=search.bounded, refined=search.refined, evaluated=search.evaluated)
    return search.best


def bound_features(nets: list[ShallowNet], D: float, points=()):
    """(rows, x, y) of the first stage's bound (d = 1): the rows of f at the points x and
    f' at the points y (fixed ones, then ``points`` each moved off every kink of ``nets``;
    with m outputs the components one after the other in each of the three blocks), whose
    L-inf distance is at most d_W up to rounding."""
    search = _Search(list(nets), check_domain(D), 1)
    y = search.snap(np.asarray(points, float), search.sorted_kinks(slice(None)))
    rows = search.features(np.arange(len(nets)), y)
    return rows, search.grid, np.concatenate([search.fixed_y, y])


def pair_bounds(nets: list[ShallowNet], D: float, i, j) -> np.ndarray:
    """The second stage's bound on d_W(nets[i], nets[j]) for index arrays i, j (d = 1)."""
    search = _Search(list(nets), check_domain(D), 1)
    return search.pair_bound(np.asarray(i, np.intp), np.asarray(j, np.intp))


def _brute_force(nets, D, k) -> list[tuple[float, int, int]]:
    pairs = combinations(range(len(nets)), 2)
    return sorted((float(sobolev_distance(nets[i], nets[j], D)), i, j) for i, j in pairs)[:k]


def _first_copies(nets, k):
    """Per network, whether it is no copy (parameters identical to the last bit) after
    the first k + 1 of its set."""
    seen: dict[bytes, int] = {}
    for net in nets:
        parts = (net.a, net.b, net.c, np.asarray(net.e, float), net.linear)
        key = repr((net.a.shape, net.c.shape, net.w is None)).encode()
        key += b"".join(part.tobytes() for part in parts)
        seen[key] = seen.get(key, 0) + 1
        yield seen[key] <= k + 1


class _Stack:
    """The networks' parameters in (n, N) arrays (padded with zero neurons, which change no
    realization; m output components in a last axis), and each realization by pieces: with
    its neurons in the order of their kinks (a != 0), f(x) = A x + B where

        A = w + sum_{a < 0} c a + sum_{kink < x} sign(a) c a,
        B = e + sum_{a < 0} c b + sum_{a = 0} c rho(b) + sum_{kink < x} sign(a) c b

    (a neuron with a > 0 switches on at its kink, one with a < 0 off, sup_norms_1d's
    comparison); ``cum_a``, ``cum_b`` hold the sums over the first 0..N kinks."""

    def __init__(self, nets: list[ShallowNet], D: float):
        n, width, m = len(nets), max(net.width for net in nets), nets[0].outputs
        a, b = np.zeros((n, width)), np.zeros((n, width))
        c, w, e = np.zeros((n, width, m)), np.zeros((n, m)), np.zeros((n, m))
        for i, net in enumerate(nets):
            a[i, : net.width], b[i, : net.width] = net.a[:, 0], net.b
            c[i, : net.width] = net.c.reshape(net.width, m)
            w[i], e[i] = net.linear.reshape(m), np.reshape(net.e, m)
        live = a != 0
        self.kinks = np.full((n, width), np.nan)
        np.divide(-b, a, out=self.kinks, where=live)  # as sup_norms_1d computes them
        ca, cb = c * a[:, :, None], c * b[:, :, None]
        off = (a < 0)[:, :, None]
        const = c * (np.maximum(b, 0.0) * ~live)[:, :, None]
        self.base_a = w + (ca * off).sum(axis=1)
        self.base_b = e + (cb * off).sum(axis=1) + const.sum(axis=1)
        cut = np.where(live, self.kinks, np.inf)
        order = np.argsort(cut, axis=1, kind="stable")
        self.cut = np.take_along_axis(cut, order, axis=1)
        sign = np.take_along_axis(np.sign(a), order, axis=1)[:, :, None]
        start = np.zeros((n, 1, m))
        steps = [np.take_along_axis(x, order[:, :, None], axis=1) * sign for x in (ca, cb)]
        self.cum_a, self.cum_b = (np.concatenate([start, x.cumsum(axis=1)], 1) for x in steps)
        self.jump = np.abs(ca).max(axis=2)
        # rounding's yardstick: the terms of f (of f') on Q are at most this in sum
        terms = (np.abs(c) * (np.abs(a) * D + np.abs(b))[:, :, None]).sum(axis=1)
        self.slope_size = self.jump.sum(axis=1) + np.abs(w).max(axis=1)
        self.size = (terms + np.abs(w) * D + np.abs(e)).max(axis=1) + D * self.slope_size
        self.a, self.b, self.c, self.w, self.e = a, b, c, w, e
        self.width, self.m = width, m

    def values(self, rows, x) -> np.ndarray:
        """f(x) of the networks ``rows``, shape (len(rows), m len(x))."""
        z = np.maximum(self.a[rows, :, None] * x + self.b[rows, :, None], 0.0)
        out = np.einsum("rnx,rnm->rmx", z, self.c[rows])
        out += self.w[rows, :, None] * x + self.e[rows, :, None]
        return out.reshape(len(rows), -1)

    def slopes(self, rows, y) -> np.ndarray:
        """f'(y) of the networks ``rows`` at points y off their kinks, (len(rows), m len(y))."""
        passed = (self.cut[rows, :, None] < y).sum(axis=1)
        out = np.take_along_axis(self.cum_a[rows], passed[:, :, None], axis=1)
        out += self.base_a[rows, None, :]
        return out.transpose(0, 2, 1).reshape(len(rows), -1)


class _Search:
    """The state of one search: the k best rows so far, the pairs evaluated, counts."""

    def __init__(self, nets, D, k):
        self.nets, self.D, self.k, self.n = nets, D, k, len(nets)
        self.p = p = _Stack(nets, D)
        self.best: list[tuple[float, int, int]] = []
        self.seen: set[int] = set()
        self.bounded = self.refined = self.evaluated = 0
        self.rng = np.random.default_rng(0)
        self.chunk = max(1, (1 << 20) // ((2 * p.width + 2) * (p.m + 1)))  # pair_bound's
        # bounds and exact d_W each round (a few eps times the terms' size, per network),
        # and the exact sup is taken at merged kinks, off by at most the slope times a
        # merged cluster's width; both directions, with room to spare
        eps = np.finfo(float).eps
        rounding = 16 * (p.width + 4) * eps * p.size
        rounding += 8 * (p.width + 2) * _MERGE * D * p.slope_size
        self.margin = 2 * float(rounding.max())
        self.clearance = (2 * p.width + 4) * _MERGE * D
        self.grid = np.linspace(-D, D, GRID)
        mids = (self.grid[:-1] + self.grid[1:]) / 2
        self.fixed_y = self.snap(mids, self.sorted_kinks(slice(None)))
        every = np.arange(self.n)
        self.fixed = np.hstack([p.values(every, self.grid), p.slopes(every, self.fixed_y)])

    @property
    def radius(self) -> float:
        """A pair whose bound exceeds this cannot enter the answer."""
        return (self.best[-1][0] if len(self.best) == self.k else np.inf) + self.margin

    def sorted_kinks(self, rows) -> np.ndarray:
        """The kinks of the networks ``rows`` inside Q, sorted."""
        t = self.p.kinks[rows].ravel()
        with np.errstate(invalid="ignore"):  # NaN: a = 0, no kink
            return np.sort(t[(t > -self.D) & (t < self.D)])

    def snap(self, y, kinks) -> np.ndarray:
        """Each point moved to the nearest midpoint of a gap at least twice the clearance
        wide between the sorted ``kinks`` and the ends of Q (none if there is no such gap)."""
        edges = np.concatenate([[-self.D], kinks, [self.D]])
        mids = ((edges[:-1] + edges[1:]) / 2)[np.diff(edges) > 2 * self.clearance]
        if mids.size <= 1 or y.size == 0:
            return mids[: min(mids.size, y.size)]
        at = np.clip(np.searchsorted(mids, y), 1, mids.size - 1)
        lo, hi = mids[at - 1], mids[at]
        return np.unique(np.where(y - lo <= hi - y, lo, hi))

    def points(self, rows) -> np.ndarray:
        """Slope points at quantiles of the kinks of ``rows`` weighted by their jumps, off
        those kinks (the features compare these networks among themselves)."""
        t, weight = self.p.kinks[rows].ravel(), self.p.jump[rows].ravel()
        with np.errstate(invalid="ignore"):  # NaN: a = 0, no kink
            inside = (t > -self.D) & (t < self.D)
        order = np.argsort(t[inside])
        t, cum = t[inside][order], np.cumsum(weight[inside][order])
        if t.size == 0 or cum[-1] == 0:
            return np.empty(0)
        count = max(QUANTILES, self.p.width)
        q = (np.arange(count) + 0.5) / count * cum[-1]
        return self.snap(t[np.minimum(np.searchsorted(cum, q), t.size - 1)], t)

    def clear(self, y: float, rows) -> np.ndarray:
        """[y], or the nearest point off every kink of ``rows``: a midpoint of the gaps
        between the kinks nearer than h (h ten times larger until there is one)."""
        t = self.p.kinks[rows].ravel()
        h = 8 * self.clearance
        while True:
            with np.errstate(invalid="ignore"):
                near = np.sort(t[np.abs(t - y) < h])
            if near.size == 0:
                return np.array([y])
            lo, hi = max(y - h, -self.D), min(y + h, self.D)
            # y - h is no kink, and all kinks lie beyond it: a gap from it is a gap
            edges = np.concatenate([[lo], near[(near > lo) & (near < hi)], [hi]])
            mids = ((edges[:-1] + edges[1:]) / 2)[np.diff(edges) > 2 * self.clearance]
            if mids.size:
                return mids[np.argmin(np.abs(mids - y)), None]
            h *= 10

    def features(self, rows, y) -> np.ndarray:
        return np.hstack([self.fixed[rows], *([self.p.slopes(rows, y)] if y.size else [])])

    def evaluate(self, i, j, bound) -> None:
        """d_W of the pairs (i, j) whose ``bound`` and then second bound are within the
        radius, in increasing order of the second, the radius checked before each."""
        self.bounded += bound.size
        keep = bound <= self.radius
        lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
        keep = self.may_enter(lo, hi)
        lo, hi = lo[keep], hi[keep]
        if lo.size == 0:
            return
        chunks = range(0, lo.size, self.chunk)
        bound = np.concatenate(
            [self.pair_bound(lo[s : s + self.chunk], hi[s : s + self.chunk]) for s in chunks]
        )
        self.refined += bound.size
        for at in np.argsort(bound, kind="stable"):
            if bound[at] > self.radius:
                break
            a, b = int(lo[at]), int(hi[at])
            code = a * self.n + b
            if code in self.seen or not self.may_enter(a, b):
                continue
            self.seen.add(code)
            self.evaluated += 1
            row = (float(sobolev_distance(self.nets[a], self.nets[b], self.D)), a, b)
            if len(self.best) < self.k or row < self.best[-1]:
                bisect.insort(self.best, row)
                del self.best[self.k :]

    def may_enter(self, lo, hi):
        """Once k pairs are at d_W = 0, only a pair before the last of them in (i, j)
        order (d_W >= 0): realizations equal to the last bit need no d_W each."""
        if len(self.best) < self.k or self.best[-1][0] > 0:
            return np.ones(np.shape(lo), bool) if np.ndim(lo) else True
        _, i, j = self.best[-1]
        return (lo < i) | ((lo == i) & (hi < j))

    def pair_bound(self, i, j) -> np.ndarray:
        """Per pair: max of |f - g| at the kinks of both in Q and its ends, and of |f' - g'|
        on the pieces between them wider than twice the clearance. The kinks of both,
        sorted (each network's in its own order), say which piece of f and of g each
        point starts."""
        p, D, width = self.p, self.D, self.p.width
        ends = np.broadcast_to(np.array([-D, D]), (i.size, 2))
        pts = np.concatenate([ends, p.cut[i], p.cut[j]], axis=1).clip(-2 * D, 2 * D)
        order = np.argsort(pts, axis=1, kind="stable")
        pts = np.take_along_axis(pts, order, axis=1)
        inside = (pts >= -D) & (pts <= D)
        piece = inside[:, :-1] & inside[:, 1:] & (np.diff(pts, axis=1) > 2 * self.clearance)

        def line(rows, passed):  # A and A x + B right of each point
            at = passed.cumsum(axis=1)[:, :, None]
            slope = np.take_along_axis(p.cum_a[rows], at, axis=1) + p.base_a[rows, None, :]
            icpt = np.take_along_axis(p.cum_b[rows], at, axis=1) + p.base_b[rows, None, :]
            return slope, slope * pts[:, :, None] + icpt

        slope_f, value_f = line(i, (order >= 2) & (order < 2 + width))
        slope_g, value_g = line(j, order >= 2 + width)
        value = np.where(inside[:, :, None], np.abs(value_f - value_g), 0.0).max(axis=(1, 2))
        slope = np.abs(slope_f - slope_g)[:, :-1]
        slope = np.where(piece[:, :, None], slope, 0.0).max(axis=(1, 2))
        return np.maximum(value, slope)

    def node(self, rows: np.ndarray) -> None:
        if rows.size <= LEAF:
            feats = self.features(rows, self.points(rows))
            i, j = np.triu_indices(rows.size, 1)
            self.evaluate(rows[i], rows[j], np.abs(feats[i] - feats[j]).max(axis=1))
            return
        sample = rows
        if rows.size > SPLIT_SAMPLE:
            sample = self.rng.choice(rows, SPLIT_SAMPLE, replace=False)
        y = self.points(sample)
        col, edge = self.split(self.features(sample, y))
        if col < self.fixed.shape[1]:
            values = self.fixed[rows, col]
        else:  # the sample's point, moved off the kinks of the whole node if need be
            comp, q = divmod(col - self.fixed.shape[1], y.size)
            values = self.p.slopes(rows, self.clear(y[q], rows))[:, comp]
        order = np.argsort(values, kind="stable")
        rows, values = rows[order], values[order]
        at = int(np.searchsorted(values, edge, side="right"))
        if not 0 < at < rows.size:
            at = rows.size // 2
        # the pairs straddling the split most narrowly: often among the closest
        near = np.arange(max(0, at - 2), min(rows.size, at + 2))
        i, j = np.meshgrid(near[near < at], near[near >= at])
        self.evaluate(rows[i.ravel()], rows[j.ravel()], np.zeros(i.size))
        self.node(rows[:at])
        self.node(rows[at:])
        self.window(rows, values, at, y)

    def split(self, feats) -> tuple[int, float]:
        """(column, edge): split after the value ``edge`` of that column, a quarter of the
        rows or more on each side; where the fewest pairs across lie within the radius r
        on that column, or before there is an r at the widest gap."""
        size = feats.shape[0]
        srt = np.sort(feats, axis=0)
        at = np.arange(max(1, size // 4), min(size - 1, size - size // 4) + 1)
        r = self.radius
        if np.isinf(r):
            gaps = srt[at] - srt[at - 1]
            pos, col = np.unravel_index(np.argmax(gaps), gaps.shape)
            return int(col), float(srt[at[pos] - 1, col])
        # pair (a, b), a < b in a column's order, lies within r iff a >= first[b], and
        # crosses a split before p iff first[b] < p <= b, i.e. p <= b < end[p]. One search
        # for all columns, each scaled into [2 col, 2 col + 1) (its rounding only moves
        # the split: the window searches each column exactly)
        cols = srt.shape[1]
        shift = np.arange(cols)[:, None] * size
        lo, span, offset = srt[0], srt[-1] - srt[0] + r, 2.0 * np.arange(cols)
        flat = ((srt - lo) / span + offset).T.ravel()
        first = np.searchsorted(flat, ((srt - r - lo) / span + offset).T.ravel())
        first = (first.reshape(cols, size) - shift).clip(0)
        csum = np.concatenate([np.zeros((cols, 1), np.int64), first.cumsum(axis=1)], axis=1)
        end = np.searchsorted((first + shift).ravel(), (at + shift).ravel())
        end = end.reshape(cols, at.size) - shift
        each = np.arange(cols)[:, None]
        cross = ((end - at) * at - (csum[each, end] - csum[each, at])).T
        key = cross * size + np.abs(2 * at - size)[:, None]  # then the most balanced
        pos, col = np.unravel_index(np.argmin(key), key.shape)
        return int(col), float(srt[at[pos] - 1, col])

    def window(self, rows, values, at, y) -> None:
        """The pairs across the split whose values lie within the radius."""
        r = self.radius
        left, right = values[:at], values[at:]
        lo = int(np.searchsorted(left, right[0] - r, side="left"))
        hi = int(np.searchsorted(right, left[-1] + r, side="right"))
        if lo >= at or hi == 0:
            return
        first = np.searchsorted(left, right[:hi] - r, side="left")  # left[first:] within r
        counts = at - first
        # the features of the rows any such pair uses, at points off their kinks, a column
        # at a time (a chunk of pairs by all columns would hold PAIR_CHUNK x columns twice)
        used = rows[lo : at + hi]
        cols = self.features(used, self.snap(y, self.sorted_kinks(used))).T.copy()
        ends = np.cumsum(counts)
        start = 0
        while start < hi:
            limit = ends[start] - counts[start] + PAIR_CHUNK  # pairs of b in start..stop
            stop = max(start + 1, int(np.searchsorted(ends, limit)))
            n_pairs = counts[start:stop]
            jb = np.repeat(np.arange(start, stop) + at - lo, n_pairs)
            ia = np.repeat(first[start:stop] - lo - np.cumsum(n_pairs) + n_pairs, n_pairs)
            ia += np.arange(ia.size)
            bound = np.zeros(ia.size)
            for col in cols:
                np.maximum(bound, np.abs(col[ia] - col[jb]), out=bound)
            self.evaluate(rows[lo + ia], rows[lo + jb], bound)
            start = stop
