"""The report's figures (matplotlib, Agg backend, PNG). Each function takes frames and a
path, writes one titled, labelled figure (atomically: a temporary sibling, then a rename)
and returns the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write

__all__ = [
    "gap_vs_width",
    "spurious_vs_width",
    "inverse_stability",
    "census_vs_width",
    "gallery",
    "witness",
]

COLORS = {"unrestricted": "tab:blue", "restricted": "tab:orange"}
FLOOR = 1e-12  # gaps at or below this are drawn on the floor of the log axis


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, size=(4.2, 3.2)):
    plt = _plt()
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _width_ticks(ax, widths) -> None:
    from matplotlib.ticker import NullFormatter

    widths = sorted(set(int(w) for w in widths))
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    kind = Path(path).suffix[1:] or "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=kind, dpi=110))
    _plt().close(fig)
    return path


def _empty(path: Path, title: str, message: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return _save(fig, path)


def gap_vs_width(cells: pd.DataFrame, path: Path, eps: float) -> Path:
    """Median gap vs width (log-log) with the 10-90 % band, one panel per problem."""
    title = "Near-optimality gap vs width"
    if cells.empty:
        return _empty(path, title, "no finished runs")
    problems = sorted(cells["problem"].unique())
    fig, axes = _grid(len(problems))
    for ax, problem in zip(axes, problems, strict=True):
        for par, g in cells[cells["problem"] == problem].groupby("parametrization"):
            g = g.sort_values("width")
            clip = lambda s: np.maximum(s.to_numpy(float), FLOOR)  # noqa: E731
            ax.plot(g["width"], clip(g["gap_median"]), "o-", color=COLORS.get(par), label=par)
            ax.fill_between(
                g["width"],
                clip(g["gap_p10"]),
                clip(g["gap_p90"]),
                color=COLORS.get(par),
                alpha=0.2,
            )
        ax.axhline(eps, color="gray", ls=":", lw=1, label=f"eps = {eps:g}")
        _width_ticks(ax, cells.loc[cells["problem"] == problem, "width"])
        ref = "+".join(sorted(set(cells.loc[cells["problem"] == problem, "reference"])))
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="width N",
            ylabel="gap J - J*",
            title=f"{problem}\nJ*: {ref}",
        )
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.suptitle(title + " (median, 10-90 % band)")
    return _save(fig, path)


def spurious_vs_width(cells: pd.DataFrame, path: Path) -> Path:
    """Share of certified local minima with gap > eps, vs width."""
    title = "Spurious certified minima vs width"
    if cells.empty or not cells["certified"].sum():
        return _empty(path, title, "no certified local minima")
    problems = sorted(cells["problem"].unique())
    fig, axes = _grid(len(problems))
    for ax, problem in zip(axes, problems, strict=True):
        for par, g in cells[cells["problem"] == problem].groupby("parametrization"):
            g = g.sort_values("width")
            ax.plot(g["width"], g["spurious_share"], "o-", color=COLORS.get(par), label=par)
        ax.set(
            xscale="log",
            ylim=(-0.05, 1.05),
            xlabel="width N",
            ylabel="spurious / certified",
            title=problem,
        )
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


KIND_MARKERS = {"add": "o", "scale": "s", "shift": "^", "new kink": "x"}


def _by_kind(ax, frame: pd.DataFrame, x: str, y) -> None:
    """One scatter per (parametrization, kind) of ``frame``: x against y (a column name,
    or a function of the group giving the values)."""
    for (par, kind), g in frame.groupby(["parametrization", "kind"]):
        ax.scatter(
            g[x],
            y(par, g) if callable(y) else g[y],
            s=12,
            color=COLORS.get(par),
            marker=KIND_MARKERS.get(kind, "o"),
            label=f"{par} {kind}",
            alpha=0.6,
        )


def _stability_panel(ax, stability: pd.DataFrame) -> None:
    """Claim 3's evidence: y vs the exact d_W per kind, restricted (fibre distance) and
    unrestricted (the new kink's lower bound)."""
    if not stability.empty:
        _by_kind(
            ax,
            stability,
            "d_W",
            lambda par, g: g["d_P"] if par == "restricted" else g["lower_bound"],
        )


def _retrain_panel(ax, retrain: pd.DataFrame) -> None:
    """The parameters' travel against the realization's, per kind."""
    if not retrain.empty and "d_W_travel" in retrain:
        _by_kind(ax, retrain, "d_W_travel", "d_P")


def _reference_slopes(ax) -> None:
    """Slopes 1/2 and 1 through the middle of what the panel shows."""
    # offsets are masked arrays: their plain data, or numpy warns that it ignores the mask
    points = [np.ma.getdata(c.get_offsets()) for c in ax.collections if len(c.get_offsets())]
    if not points:
        return
    xy = np.concatenate(points)
    x, y = xy[:, 0], xy[:, 1]
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return
    x, y = x[ok], y[ok]
    lo, hi = float(x.min()), max(float(x.max()), float(x.min()) * 10)
    grid = np.geomspace(lo, hi, 20)
    for p, ls in ((0.5, "--"), (1.0, ":")):
        scale = float(np.median(y)) / np.sqrt(lo * hi) ** p
        ax.plot(grid, scale * grid**p, color="gray", ls=ls, lw=1, label=f"slope {p:g}")


def inverse_stability(
    stability: pd.DataFrame,
    retrain: pd.DataFrame,
    path_rows: pd.DataFrame,
    pairs: pd.DataFrame,
    path: Path,
) -> Path:
    """Parameter distance vs realization distance on log-log axes, with reference slopes
    1/2 and 1: trained networks perturbed by kind (claim 3's evidence: restricted fibre
    distances, the unrestricted new kink's lower bound), retraining (the parameters'
    travel vs the realization's), and the checks of the distances (pathologies and seed
    pairs, raw and on Omega_N)."""
    from matplotlib.ticker import NullFormatter

    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax_trained, ax_retrain, ax_path, ax_pairs = axes.flat
    _stability_panel(ax_trained, stability)
    ax_trained.set_title("trained networks perturbed (claim 3)")
    _retrain_panel(ax_retrain, retrain)
    ax_retrain.set_title("retraining: travel of parameters vs realization")
    for ax, frame, title in (
        (ax_path, path_rows, "check: pathologies P0-P4"),
        (ax_pairs, pairs, "check: closest seed pairs"),
    ):
        if not frame.empty:
            for col, label, color in (
                ("d_P_raw", "raw", "tab:red"),
                ("d_P_canonical", "Omega_N (fibre)", "tab:green"),
            ):
                ax.scatter(frame["d_W"], frame[col], s=12, color=color, label=label, alpha=0.7)
        ax.set_title(title)
    for ax in axes.flat:
        _reference_slopes(ax)
        ax.set(xscale="log", yscale="log", xlabel="d_W (W^1,inf)", ylabel="parameter distance")
        ax.xaxis.set_minor_formatter(NullFormatter())
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle("Inverse stability: parameter distance vs realization distance")
    return _save(fig, path)


def census_vs_width(census: pd.DataFrame, path: Path) -> Path:
    """Mean census shares (dead, affine, duplicate, opposite) vs width, per parametrization
    (all problems pooled), and the effective width relative to the width."""
    title = "Degeneracy census of end points"
    if census.empty:
        return _empty(path, title, "no finished runs")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    pooled = census.groupby(["parametrization", "width"]).mean(numeric_only=True).reset_index()
    styles = {"dead": "o-", "affine": "s-", "duplicate": "^-", "opposite": "v-"}
    for par, g in pooled.groupby("parametrization"):
        for kind, style in styles.items():
            axes[0].plot(
                g["width"], g[kind], style, color=COLORS.get(par), label=f"{par}: {kind}", alpha=0.8
            )
        axes[1].plot(
            g["width"], g["effective_width"] / g["width"], "o-", color=COLORS.get(par), label=par
        )
    axes[0].set(
        xscale="log", xlabel="width N", ylabel="share of neurons", title="degenerate neurons"
    )
    axes[1].set(
        xscale="log",
        xlabel="width N",
        ylabel="effective width / N",
        ylim=(0, 1.05),
        title="effective width after canonical form",
    )
    for ax in axes:
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(title + " (mean over seeds and problems)")
    return _save(fig, path)


def gallery(items: list[dict], path: Path) -> Path:
    """Realizations vs target with kinks marked; ``items``: dicts with x, f, target,
    kinks and title, or (kind "regions") a classifier's decision regions with its data."""
    title = "Realizations (d = 1: against the target; in the plane: decision regions)"
    if not items:
        return _empty(path, title, "no d = 1 runs or classifiers in the plane to show")
    fig, axes = _grid(len(items), size=(4.2, 3.0))
    for ax, it in zip(axes, items, strict=True):
        if it.get("kind") == "regions":
            _regions(ax, it)
            continue
        ax.plot(it["x"], it["target"], color="black", lw=1, label="target")
        ax.plot(it["x"], it["f"], color="tab:purple", lw=1.2, label="realization")
        k = np.asarray(it["kinks"])
        if k.size:
            ax.plot(k, np.interp(k, it["x"], it["f"]), "x", color="tab:red", ms=5, label="kinks")
        ax.set(xlabel="x", ylabel="f(x)", title=it["title"])
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6)
    fig.suptitle(title)
    return _save(fig, path)


def witness(item: dict | None, path: Path) -> Path:
    """The best claim-2 witness (``witnesses.witness_item``): its realization and data
    with the free neuron's new kink, and beside it the loss's gradient in the function
    values with the descent direction the new neuron takes."""
    title = "Claim 2: a parameter-space minimum that is not a realization-space minimum"
    if item is None:
        return _empty(path, title, "no verified witness in d = 1")
    fig, (left, right) = _plt().subplots(1, 2, figsize=(10, 3.6))
    left.plot(item["data_x"], item["data_y"], ".", color="0.6", ms=3, label="data")
    left.plot(item["x"], item["f"], color="tab:blue", lw=1.2, label="realization R Theta")
    left.axvline(item["kink"], color="tab:red", ls="--", lw=1, label="new kink t")
    left.set(xlabel="x", ylabel="f(x)", title=item["title"])
    left.title.set_fontsize(8)
    left.legend(fontsize=6)
    scale = np.abs(item["G"]).max() / max(np.abs(item["direction"]).max(), 1e-300)
    right.axhline(0.0, color="0.8", lw=0.8)
    right.plot(item["data_x"], item["G"], ".", color="tab:gray", ms=3, label="G = dL/df (data)")
    right.plot(
        item["x"],
        scale * item["direction"],
        color="tab:red",
        lw=1.2,
        label="descent direction v rho(u x - t) (scaled)",
    )
    right.axvline(item["kink"], color="tab:red", ls="--", lw=1)
    right.set(xlabel="x", title="J falls along the direction: <G, direction> < 0")
    right.title.set_fontsize(8)
    right.legend(fontsize=6)
    fig.suptitle(title)
    return _save(fig, path)


def _regions(ax, it: dict) -> None:
    """A classifier's predicted class on the grid (shaded) and its training points
    (coloured by label, edged in black)."""
    from matplotlib.colors import ListedColormap

    grid, m = it["grid"], it["classes"]
    side = int(round(np.sqrt(len(grid))))
    cmap = _plt().get_cmap("tab10")
    colors = ListedColormap([cmap(j) for j in range(m)])
    extent = (grid[:, 0].min(), grid[:, 0].max(), grid[:, 1].min(), grid[:, 1].max())
    # the grid is indexed (x0, x1) with x0 slowest: transpose for imshow's (row = x1)
    ax.imshow(
        it["predicted"].reshape(side, side).T,
        origin="lower",
        extent=extent,
        cmap=colors,
        vmin=-0.5,
        vmax=m - 0.5,
        alpha=0.35,
        interpolation="nearest",
    )
    pts = it["points"]
    ax.scatter(
        pts[:, 0],
        pts[:, 1],
        c=it["labels"],
        cmap=colors,
        vmin=-0.5,
        vmax=m - 0.5,
        s=14,
        edgecolors="black",
        linewidths=0.5,
    )
    ax.set(xlabel="x_1", ylabel="x_2", title=it["title"])
    ax.title.set_fontsize(8)
