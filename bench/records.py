"""Benchmark: building a shard's records, the path before the fast path against the current one;
and certifying a shard, the dense MSE Hessian by torch.func against the closed form.

Each shard (sin, d = 1, 64 samples, Adam, float32, one torch thread; both
parametrizations, each width) is trained once; then, interleaved and repeated on the same
trained shard in this process:

  certify old  ``certify`` with the dense MSE Hessian taken by torch.func
               (``vmap(hessian(...))`` of ``_single_mse``), the one step that changed,
               swapped back in for the call;
  certify new  ``certify`` as it is now (the closed-form ``mse_hessian``);
  new, data    the same, handed the shard's training data (as ``train_and_record`` does)
               instead of drawing it again;
  old          the record path as it was, kept below verbatim (renamed ``old_*``):
               canonical_form twice per network (the record's, and again inside the
               census), scipy's pdist / connected_components for every network, the
               eval-grid realization computed eagerly;
  new          ``build_records`` as it is now (canonical form once, numpy fast path,
               eval-grid fields computed when first read);
  new + read   ``build_records``, then every record's eval-grid fields read: what writing
               the realization artifact costs on top, wherever that happens.

Prints CPU ms per network (this process's: on a shared machine wall time mostly measures
the neighbours), the ratios old / new, then the parts per call. Records: each chunk of 25
networks timed ``--repeats`` times with the paths in turn, its best time counted.
Certificates: each chunk of 64 networks (certify's own chunk) timed ``--cert-repeats``
times likewise (the old path costs about 80 ms per network at width 64). ShallowNet's
construction is shared by both record paths (its cheaper checks count on both sides, so
the ratios understate the change a little). Before the records are timed, every new record
is checked equal to the old one to 1e-12 (all fields, the eval-grid arrays and the
summary); every new certificate equals the old one but for min_eig, which agrees to 1e-10.

    python bench/records.py                          # 500 networks per shard, widths 8, 64
    python bench/records.py --networks 200 --widths 8 --repeats 5 --cert-repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import time

import numpy as np
import torch

from realspace.core.canonical import canonical_form, classify_neurons, orientation_flips
from realspace.core.census import degeneracy_census
from realspace.core.nets import ShallowNet, check_domain
from realspace.core.problem import eval_grid, make_data, network_from_params, target_on
from realspace.core.restricted import DEFAULT_TOL, live_neurons, restricted_set_margins
from realspace.core.spec import RunSpec
from realspace.train import RunRecord, build_records, certify, train_shard
from realspace.train.loop import ShardResult, TrainOptions
from realspace.train.state import RunStatus

# the module, not the function of the same name that realspace.train exports
certify_module = importlib.import_module("realspace.train.certify")


# -- the dense MSE Hessian before the closed form ------------------------------------------


def old_mse_hessian(p, X, y, lam, names):
    """The step of certify's dense MSE path as it was: torch.func's Hessian, batched."""
    M = X.shape[0]
    shapes = [tuple(p[k].shape[1:]) for k in names]
    theta = torch.cat([p[k].reshape(M, -1) for k in names], dim=1)
    fixed = {k: v for k, v in p.items() if k not in names}

    def single(th, fx, x, yy, lm):
        return certify_module._single_mse(th, fx, x, yy, lm, names, shapes)

    return torch.func.vmap(torch.func.hessian(single))(theta, fixed, X, y, lam)


@contextlib.contextmanager
def torch_func_hessian():
    """certify as it was: the dense MSE Hessian by torch.func."""
    new = certify_module.mse_hessian
    certify_module.mse_hessian = old_mse_hessian
    try:
        yield
    finally:
        certify_module.mse_hessian = new


def old_certify(result, **kw):
    with torch_func_hessian():
        return certify(result, **kw)


# -- the record path before the fast path: verbatim but for the names (docstrings left out) --


def old_hyperplane_angles(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.column_stack([a, b])
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    gram = np.clip(u @ u.T, -1.0, 1.0)
    diff = np.sqrt(np.maximum(2.0 - 2.0 * gram, 0.0))
    summ = np.sqrt(np.maximum(2.0 + 2.0 * gram, 0.0))
    # The Gram route loses half the digits for nearly (anti)parallel pairs: redo those
    # from explicit differences, which are exact to rounding.
    for chord, sign in ((diff, -1.0), (summ, 1.0)):
        i, j = np.nonzero(chord < 1e-3)
        chord[i, j] = np.linalg.norm(u[i] + sign * u[j], axis=1)
    same = 2.0 * np.arcsin(np.clip(diff / 2.0, 0.0, 1.0))
    opposite = 2.0 * np.arcsin(np.clip(summ / 2.0, 0.0, 1.0))
    return same, opposite


def old_restricted_set_margins(net: ShallowNet, D: float, tol: float = DEFAULT_TOL) -> dict:
    D = check_domain(D)
    live = live_neurons(net)
    a, b, c = net.a[live], net.b[live], net.c[live]
    n_live = int(live.sum())
    norm2 = np.linalg.norm(a, axis=1)
    norm1 = np.abs(a).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.abs(np.log(np.abs(c)) - np.log(norm2))
        log_ratio = np.where((np.abs(c) == 0) & (norm2 == 0), np.inf, log_ratio)
        kink = np.where(norm1 > 0, D - np.abs(b) / norm1, -np.inf)
    max_imbalance = float(log_ratio.max()) if n_live else 0.0
    min_abs_c = float(np.abs(c).min()) if n_live else np.inf
    min_kink = float(kink.min()) if n_live else np.inf

    min_same = min_opp = np.inf
    if n_live >= 2:
        same, opp = old_hyperplane_angles(a, b)
        off = ~np.eye(n_live, dtype=bool)
        min_same = float(same[off].min())
        min_opp = float(opp[off].min())

    r1 = max_imbalance <= tol
    r2 = min_kink > 0.0
    r3 = min_same > tol
    r4 = min_opp > tol
    return {
        "max_imbalance": max_imbalance,
        "min_abs_c": min_abs_c,
        "kink_margins": kink,
        "min_kink_margin": min_kink,
        "min_angle_same": min_same,
        "min_angle_opposite": min_opp,
        "min_hyperplane_angle": min(min_same, min_opp),
        "n_live": n_live,
        "n_padding": int(net.width - n_live),
        "R1": bool(r1),
        "R2": bool(r2),
        "R3": bool(r3),
        "R4": bool(r4),
        "member": bool(r1 and r2 and r3 and r4),
    }


def old_canonical_form(
    net: ShallowNet, D: float, tol: float = DEFAULT_TOL, width: int | None = None
) -> ShallowNet:
    D = check_domain(D)
    d = net.dim
    width = net.width if width is None else int(width)
    kind = classify_neurons(net, D, tol)
    w = net.linear.copy()
    e = net.e
    aff = kind["affine"]
    w += net.c[aff] @ net.a[aff]
    e += float(net.c[aff] @ net.b[aff])

    keep = kind["inside"]
    norm = np.linalg.norm(net.a[keep], axis=1)
    a_hat = net.a[keep] / norm[:, None]
    b_hat = net.b[keep] / norm
    gamma = net.c[keep] * norm
    scale = float(np.abs(gamma).max()) if gamma.size else 0.0

    flip = orientation_flips(a_hat, b_hat, D, tol)
    w += gamma[flip] @ a_hat[flip]
    e += float(gamma[flip] @ b_hat[flip])
    a_hat[flip] *= -1.0
    b_hat[flip] *= -1.0

    if gamma.size:
        u = np.column_stack([a_hat, b_hat])
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial.distance import pdist, squareform

        close = squareform(pdist(u)) <= 2.0 * np.sin(tol / 2.0)
        n_groups, label = connected_components(coo_matrix(close), directed=False)
        weight = np.abs(gamma) + 1e-300
        gamma = np.bincount(label, weights=gamma, minlength=n_groups)
        mean = np.zeros((n_groups, d + 1))
        np.add.at(mean, label, weight[:, None] * np.column_stack([a_hat, b_hat]))
        mean /= np.linalg.norm(mean[:, :d], axis=1, keepdims=True)
        a_hat, b_hat = mean[:, :d], mean[:, d]

    big = np.abs(gamma) > tol * scale
    a_hat, b_hat, gamma = a_hat[big], b_hat[big], gamma[big]
    if gamma.size > width:
        raise ValueError(f"canonical form needs width {gamma.size}, more than width={width}")
    order = np.lexsort(np.column_stack([a_hat, b_hat]).T[::-1])
    a_hat, b_hat, gamma = a_hat[order], b_hat[order], gamma[order]
    t = np.sqrt(np.abs(gamma))
    canon = ShallowNet(t[:, None] * a_hat, t * b_hat, np.sign(gamma) * t, e, w)
    return canon.padded(width)


def old_degeneracy_census(net: ShallowNet, D: float, angle_tol: float = 1e-6) -> dict:
    N = net.width
    kind = classify_neurons(net, D)
    live = live_neurons(net)
    inside = kind["inside"] & live
    dup = np.zeros(N, bool)
    opp = np.zeros(N, bool)
    idx = np.flatnonzero(inside)
    if idx.size >= 2:
        same, opposite = old_hyperplane_angles(net.a[idx], net.b[idx])
        np.fill_diagonal(same, np.inf)
        np.fill_diagonal(opposite, np.inf)
        dup[idx] = (same <= angle_tol).any(axis=1)
        opp[idx] = (opposite <= angle_tol).any(axis=1)
    ab = np.linalg.norm(np.column_stack([net.a, net.b]), axis=1)
    ok = live & (np.abs(net.c) > 0) & (ab > 0)
    imbalance = np.abs(np.log(np.abs(net.c[ok]) / ab[ok])) if ok.any() else np.zeros(1)
    share = (lambda m: float(np.count_nonzero(m & live)) / N) if N else (lambda m: 0.0)
    return {
        "dead": share(kind["dead"]),
        "affine": share(kind["affine"]),
        "duplicate": share(dup),
        "opposite": share(opp),
        "imbalance_mean": float(imbalance.mean()),
        "imbalance_max": float(imbalance.max()),
        "effective_width": int(np.count_nonzero(live_neurons(old_canonical_form(net, D)))),
    }


def old_build_records(result, certificates: list[dict]) -> list[RunRecord]:
    records = []
    for m, spec in enumerate(result.specs):
        params = {k: v[m] for k, v in result.params.items()}
        net = network_from_params(params, spec.restricted)
        cert = certificates[m]
        grid = eval_grid(spec.d, spec.D) if spec.loss == "mse" else None
        keep = result.history_step[m] >= 0
        records.append(
            RunRecord(
                spec=spec,
                status=RunStatus(int(result.status[m])).label,
                steps=int(result.steps[m]),
                diverged_step=int(result.diverged_step[m]),
                loss=cert["loss"],
                objective=cert["objective"],
                grad_norm=cert["grad_norm"],
                min_eig=cert["min_eig"],
                eig_method=cert["eig_method"],
                certified=cert["certified"],
                near_kink=cert["near_kink"],
                min_kink_distance=cert["min_kink_distance"],
                params=params,
                canonical=old_canonical_form(net, spec.D),
                margins=old_restricted_set_margins(net, spec.D),
                history_step=result.history_step[m][keep],
                history_loss=result.history_loss[m][keep],
                projections={k: int(v[m]) for k, v in result.counts.items()},
                eval_x=grid,
                eval_f=None if grid is None else net(grid),
                eval_grad=None if grid is None else net.gradient(grid),
                eval_target=None if grid is None else target_on(spec, grid),
                census=old_degeneracy_census(net, spec.D),
                dtype=result.dtype,
                device=result.device,
            )
        )
    return records


# -- measuring ---------------------------------------------------------------------------------

CHUNK = 25  # networks per timed call: short calls, so a burst next door spoils few of them
CERT_CHUNK = 64  # certify's own chunk: each timed call is one batched Hessian


def part_of(result: ShardResult, lo: int, hi: int) -> ShardResult:
    """Networks lo..hi of a shard as a shard of their own (views, no copies)."""
    return dataclasses.replace(
        result,
        specs=result.specs[lo:hi],
        params={k: v[lo:hi] for k, v in result.params.items()},
        status=result.status[lo:hi],
        steps=result.steps[lo:hi],
        diverged_step=result.diverged_step[lo:hi],
        history_step=result.history_step[lo:hi],
        history_loss=result.history_loss[lo:hi],
        counts={k: v[lo:hi] for k, v in result.counts.items()},
    )


def new_and_read(result, certificates):
    records = build_records(result, certificates)
    for r in records:
        r.eval_f  # noqa: B018 - reading one field realizes all four
    return records


def cpu_ms_per_item(fns: dict, items: list, repeats: int) -> dict:
    """CPU ms per item of each function fn(item) -> cost in items: for each item, the
    functions run in turn ``repeats`` times and the best time counts; the sum over items
    divided by the total cost."""
    total = {k: 0.0 for k in fns}
    count = 0
    for item in items:
        best = {k: np.inf for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                t = time.process_time()
                n = fn(item)
                best[k] = min(best[k], time.process_time() - t)
        count += n
        for k in fns:
            total[k] += best[k]
    return {k: 1e3 * v / count for k, v in total.items()}


def same(x, y, path="") -> None:
    """x equals y: numbers to 1e-12 (absolute and relative), everything else exactly."""
    if isinstance(x, dict):
        assert x.keys() == y.keys(), path
        for k in x:
            same(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, ShallowNet):
        for k in ("a", "b", "c", "e", "linear"):
            same(getattr(x, k), getattr(y, k), f"{path}.{k}")
    elif x is None or isinstance(x, str | bool | np.bool_ | RunSpec):
        assert x == y, path
    else:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        assert x.shape == y.shape, path
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=path)


FIELDS = (
    "canonical census margins eval_x eval_f eval_grad eval_target params history_step "
    "history_loss projections status steps diverged_step spec loss objective grad_norm "
    "min_eig eig_method certified near_kink min_kink_distance dtype device"
).split()


def measure(width: int, par: str, args) -> tuple:
    shape = dict(target="sin", d=1, width=width, parametrization=par, n_samples=64)
    specs = [
        RunSpec(**shape, optimizer="adam", steps=args.steps, seed=s) for s in range(args.networks)
    ]
    result = train_shard(specs, TrainOptions(dtype=torch.float32))
    data = [make_data(s) for s in specs]

    parts = [(lo, part_of(result, lo, lo + CERT_CHUNK)) for lo in range(0, len(specs), CERT_CHUNK)]
    last = {}  # (path, first network) -> that chunk's certificates, from the last repeat

    def kept(path, fn):
        def run(item):
            lo, part = item
            last[path, lo] = out = fn(part, data[lo : lo + len(part.specs)])
            return len(out)

        return run

    cert_ms = cpu_ms_per_item(
        {
            "old": kept("old", lambda part, _: old_certify(part)),
            "new": kept("new", lambda part, _: certify(part)),
            "new, data": kept("data", lambda part, xy: certify(part, data=xy)),
        },
        parts,
        args.cert_repeats,
    )
    certs = {
        path: [c for lo, _ in parts for c in last[path, lo]] for path in ("old", "new", "data")
    }
    for o, n, g in zip(certs["old"], certs["new"], certs["data"], strict=True):
        assert n == g, (n, g)
        assert abs(n["min_eig"] - o["min_eig"]) <= 1e-10, (n, o)
        assert {**n, "min_eig": 0} == {**o, "min_eig": 0}, (n, o)
    certs = certs["new"]

    old, new = old_build_records(result, certs), new_and_read(result, certs)
    for o, n in zip(old, new, strict=True):
        for f in FIELDS:
            same(getattr(o, f), getattr(n, f), f"seed {n.spec.seed}: {f}")
        same(o.summary(), n.summary(), f"seed {n.spec.seed}: summary")

    chunks = [
        (part_of(result, lo, lo + CHUNK), certs[lo : lo + CHUNK])
        for lo in range(0, len(specs), CHUNK)
    ]
    ms = cpu_ms_per_item(
        {
            "old": lambda rc: len(old_build_records(*rc)),
            "new": lambda rc: len(build_records(*rc)),
            "new + read": lambda rc: len(new_and_read(*rc)),
        },
        chunks,
        args.repeats,
    )
    D, x = specs[0].D, new[0].eval_x
    nets = [(r.network, r.canonical) for r in new]
    groups = [nets[lo : lo + CHUNK] for lo in range(0, len(nets), CHUNK)]

    def each(f):
        return lambda group: len([f(*p) for p in group])

    us = cpu_ms_per_item(
        {
            "canonical old": each(lambda net, _: old_canonical_form(net, D)),
            "canonical new": each(lambda net, _: canonical_form(net, D)),
            "census old": each(lambda net, _: old_degeneracy_census(net, D)),
            "census new": each(lambda net, can: degeneracy_census(net, D, canonical=can)),
            "margins old": each(lambda net, _: old_restricted_set_margins(net, D)),
            "margins new": each(lambda net, _: restricted_set_margins(net, D)),
            "realize": each(lambda net, _: (net(x), net.gradient(x))),
        },
        groups,
        args.repeats,
    )
    return cert_ms, ms, {k: 1e3 * v for k, v in us.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--networks", type=int, default=500, help="networks per shard")
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cert-repeats", type=int, default=2, help="repeats of each certify chunk")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # torch.func's first Hessian in a process imports torch._dynamo (seconds): not timed
    old_certify(train_shard([RunSpec(width=2, steps=2, n_samples=8)], TrainOptions()))

    rows = [(w, par, *measure(w, par, args)) for w in args.widths for par in PARAMETRIZATIONS]

    print(
        f"certify one shard ({args.networks} networks, sin d=1, {args.steps} Adam steps, "
        f"float32, 1 thread): CPU ms per network, best of {args.cert_repeats} per "
        f"{CERT_CHUNK} networks"
    )
    print(
        f"{'width':>5} {'parametrization':<15} {'old':>8} {'new':>8} {'old/new':>8}"
        f" {'new, data':>10} {'old/(new, data)':>16}"
    )
    for width, par, cert, *_ in rows:
        print(
            f"{width:>5} {par:<15} {cert['old']:8.3f} {cert['new']:8.3f}"
            f" {cert['old'] / cert['new']:8.1f} {cert['new, data']:10.3f}"
            f" {cert['old'] / cert['new, data']:16.1f}"
        )
    print(
        f"\nrecords of one shard: CPU ms per network, best of {args.repeats} per {CHUNK} networks"
    )
    print(
        f"{'width':>5} {'parametrization':<15} {'old':>8} {'new':>8} {'old/new':>8}"
        f" {'new+read':>9} {'old/(new+read)':>15}"
    )
    for width, par, _, ms, _ in rows:
        print(
            f"{width:>5} {par:<15} {ms['old']:8.3f} {ms['new']:8.3f}"
            f" {ms['old'] / ms['new']:8.1f} {ms['new + read']:9.3f}"
            f" {ms['old'] / ms['new + read']:15.1f}"
        )
    keys = list(rows[0][-1])
    print(f"\nparts: CPU us per call, best of {args.repeats} per {CHUNK} networks")
    print(f"{'width':>5} {'parametrization':<15} " + " ".join(f"{k:>13}" for k in keys))
    for width, par, *_, us in rows:
        print(f"{width:>5} {par:<15} " + " ".join(f"{us[k]:13.1f}" for k in keys))
    print(
        "\nevery new certificate equals the old one, min_eig to 1e-10; every new record equals"
        " the old one to 1e-12 (all fields, eval grid and summary)"
    )


PARAMETRIZATIONS = ("unrestricted", "restricted")

if __name__ == "__main__":
    main()
