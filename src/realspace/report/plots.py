"""The report's figures (matplotlib, Agg backend, PNG). Each function takes frames and a
path, writes one titled, labelled figure and returns the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["gap_vs_width", "spurious_vs_width", "inverse_stability", "census_vs_width", "gallery"]

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
    fig.savefig(path, dpi=110)
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


def inverse_stability(
    path_rows: pd.DataFrame, pairs: pd.DataFrame, retrain: pd.DataFrame, path: Path
) -> Path:
    """d_P vs d_W on log-log axes with reference slopes 1/2 and 1: pathologies (raw and
    on Omega_N), seed pairs, retraining (unrestricted vs restricted)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    panels = [
        (
            "pathologies P0-P4",
            path_rows,
            [("d_P_raw", "raw", "tab:red"), ("d_P_canonical", "Omega_N (fibre)", "tab:green")],
        ),
        (
            "seed pairs (closest)",
            pairs,
            [("d_P_raw", "raw", "tab:red"), ("d_P_canonical", "Omega_N (fibre)", "tab:green")],
        ),
    ]
    for ax, (title, frame, series) in zip(axes[:2], panels, strict=True):
        for col, label, color in series:
            if not frame.empty:
                ax.scatter(frame["d_W"], frame[col], s=12, color=color, label=label, alpha=0.7)
        ax.set_title(title)
    ax = axes[2]
    groups = retrain.groupby(["parametrization", "d_P_bound"]) if not retrain.empty else []
    for (par, bound), g in groups:
        marker, label = ("o", par) if bound == "exact" else ("x", f"{par} (upper bound)")
        ax.scatter(
            g["d_W"], g["d_P"], s=14, color=COLORS.get(par), label=label, alpha=0.7, marker=marker
        )
    ax.set_title("retraining from trained Gamma")
    frames = [
        (path_rows, ["d_P_raw", "d_P_canonical"]),
        (pairs, ["d_P_raw", "d_P_canonical"]),
        (retrain, ["d_P"]),
    ]
    for ax, (frame, cols) in zip(axes, frames, strict=True):
        if not frame.empty:
            x = frame["d_W"].to_numpy(float)
            y = np.concatenate([frame[c].to_numpy(float) for c in cols])
            x, y = x[(x > 0) & np.isfinite(x)], y[(y > 0) & np.isfinite(y)]
            if len(x) and len(y):
                lo, hi = float(x.min()), max(float(x.max()), float(x.min()) * 10)
                grid = np.geomspace(lo, hi, 20)
                for p, ls in ((0.5, "--"), (1.0, ":")):  # through the data's centre
                    scale = float(np.median(y)) / np.sqrt(lo * hi) ** p
                    ax.plot(grid, scale * grid**p, color="gray", ls=ls, lw=1, label=f"slope {p:g}")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="d_W (W^1,inf distance of realizations)",
            ylabel="d_P (parameter distance)",
        )
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
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
