"""Statistics of the witness stage (pandas in, pandas out): claim 2's evidence.

A *witness* is an unrestricted end point that is a certified parameter-space local
minimum, twice differentiable there (no sample on a kink), with a free neuron and a
realization-space descent direction at its own width, verified by construction
(``realspace.core.witness``). The stage computes free neurons, rate and verification for every
unrestricted end point; this module joins them with the end points' certificates.

The math: docs/science.md#the-claims-and-their-verdicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["witness_rows", "witness_table", "best_witness", "witness_item"]

_RUN_COLUMNS = ["run_key", "problem", "width", "certified", "near_kink", "run_status"]


def witness_rows(runs: pd.DataFrame, witness: pd.DataFrame) -> pd.DataFrame:
    """One row per unrestricted end point the witness stage measured: its stage columns
    (``free_neurons``, ``descent_rate``, ``rate_bound``, ``witness``, ``witness_C``, ...)
    beside its run's problem and width, and ``minimum``: certified, not diverged and no
    sample on a kink (the loss twice differentiable there, so the certificate means a
    local minimum)."""
    if witness.empty or runs.empty or "run_key" not in runs:
        return pd.DataFrame()
    have = [c for c in _RUN_COLUMNS if c in runs]
    stage = witness.drop(columns=[c for c in ("width", "seed") if c in witness])
    out = stage.merge(runs[[*have, "seed"]], on="run_key", how="inner")
    diverged = out["run_status"].eq("diverged") if "run_status" in out else False
    near = out["near_kink"].astype(bool) if "near_kink" in out else False
    out["minimum"] = out["certified"].astype(bool) & ~diverged & ~near
    out["witness"] = out["witness"].astype(bool) & out["minimum"]
    out["descends"] = (out["free_neurons"] > 0) & (out["descent_rate"] > 0)
    return out


def witness_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (problem, width): end points, certified minima, minima with a free neuron, with
    a free neuron and a positive descent rate, verified witnesses, and the best witness's
    rate and C (NaN without one)."""
    if rows.empty:
        return pd.DataFrame()

    def agg(g):
        m = g[g["minimum"]]
        w = g[g["witness"]]
        best = w.loc[w["descent_rate"].idxmax()] if len(w) else None
        return pd.Series(
            {
                "networks": len(g),
                "minima": len(m),
                "with_free_neuron": int((m["free_neurons"] > 0).sum()),
                "descending": int(m["descends"].sum()),
                "witnesses": len(w),
                "best_rate": float(best["descent_rate"]) if best is not None else np.nan,
                "best_C": float(best["witness_C"]) if best is not None else np.nan,
            }
        )

    return rows.groupby(["problem", "width"]).apply(agg, include_groups=False).reset_index()


def best_witness(rows: pd.DataFrame) -> pd.Series | None:
    """The verified witness with the largest descent rate (None without one)."""
    if rows.empty or not rows["witness"].any():
        return None
    w = rows[rows["witness"]]
    return w.loc[w["descent_rate"].idxmax()]


def witness_item(runs: pd.DataFrame, best: pd.Series | None, params: dict | None) -> dict | None:
    """What the witness figure draws (d = 1 only; None otherwise): the realization on the
    evaluation grid with the data, the new kink t of the free neuron's slot, the loss's
    gradient G in the function values on the data, and the descent direction
    v rho(u x - t) (its sign against G), with the numbers for the title."""
    from .. import stats
    from ..core.problem import eval_grid, make_data, network_from_params
    from ..core.witness import loss_gradient

    if best is None or not params or best["run_key"] not in params:
        return None
    row = runs[runs["run_key"] == best["run_key"]]
    spec = stats.specs_of(row)[0]
    if spec.d != 1 or spec.outputs != 1 or spec.loss == "gaussian":
        return None
    net = network_from_params(params[best["run_key"]], spec.has_linear)
    x, y = make_data(spec)
    grid = eval_grid(1, spec.D)
    u, t = float(np.ravel(best["witness_u"])[0]), float(best["witness_t"])
    G = loss_gradient(net(x), y, spec.loss)
    push = np.maximum(u * grid[:, 0] - t, 0.0)
    sign = -np.sign(G @ np.maximum(u * x[:, 0] - t, 0.0)) or 1.0
    return {
        "x": grid[:, 0],
        "f": net(grid),
        "data_x": x[:, 0],
        "data_y": y,
        "kink": t / u,
        "G": G,
        "direction": sign * push,
        "title": f"{best['problem']} N={spec.width} seed {spec.seed}: rate "
        f"{best['descent_rate']:.3g}, C {best['witness_C']:.3g}",
    }
