"""Per-run records: everything a trained network leaves behind, ready to log.

The math: docs/science.md#training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..canonical import canonical_form
from ..census import degeneracy_census
from ..nets import ShallowNet
from ..problem import eval_grid, network_from_params, target_on
from ..restricted import restricted_set_margins
from ..spec import RunSpec
from .loop import ShardResult
from .state import RunStatus

__all__ = ["RunRecord", "build_records"]


@dataclass
class RunRecord:
    """The end point of one run (float64 numbers; ``dtype`` says what it trained in)."""

    spec: RunSpec
    status: str  # RunStatus label: converged | plateau | budget | diverged
    steps: int
    diverged_step: int  # -1 unless diverged
    loss: float  # full-batch data loss (MSE or population loss) at the end point
    objective: float  # loss + weight-decay penalty
    grad_norm: float
    min_eig: float
    eig_method: str
    certified: bool  # grad_norm <= tol and min_eig >= -tol
    near_kink: bool
    min_kink_distance: float
    params: dict  # raw final parameters
    canonical: ShallowNet
    margins: dict  # restricted_set_margins of the raw final parameters
    history_step: np.ndarray
    history_loss: np.ndarray
    projections: dict  # folded / kink / merge / reseed counts (restricted runs)
    eval_x: np.ndarray | None
    eval_f: np.ndarray | None
    eval_grad: np.ndarray | None
    eval_target: np.ndarray | None  # the noiseless target on the grid
    census: dict  # degeneracy census of the raw end point
    dtype: str
    device: str

    @property
    def network(self) -> ShallowNet:
        return network_from_params(self.params, self.spec.restricted)

    def summary(self) -> dict:
        """Scalars of the record (JSON-ready)."""
        m = {k: v for k, v in self.margins.items() if np.ndim(v) == 0}
        return {
            "status": self.status,
            "steps": self.steps,
            "diverged_step": self.diverged_step,
            "loss": self.loss,
            "objective": self.objective,
            "grad_norm": self.grad_norm,
            "min_eig": self.min_eig,
            "eig_method": self.eig_method,
            "certified": self.certified,
            "near_kink": self.near_kink,
            "min_kink_distance": self.min_kink_distance,
            "dtype": self.dtype,
            "device": self.device,
            **{f"proj_{k}": int(v) for k, v in self.projections.items()},
            **{f"census_{k}": v for k, v in self.census.items()},
            **{
                f"margin_{k}": (bool(v) if isinstance(v, bool | np.bool_) else float(v))
                for k, v in m.items()
            },
        }


def build_records(result: ShardResult, certificates: list[dict]) -> list[RunRecord]:
    records = []
    for m, spec in enumerate(result.specs):
        params = {k: v[m] for k, v in result.params.items()}
        net = network_from_params(params, spec.restricted)
        cert = certificates[m]
        grid = eval_grid(spec.d, spec.D) if spec.loss == "mse" else None
        canonical = canonical_form(net, spec.D)
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
                canonical=canonical,
                margins=restricted_set_margins(net, spec.D),
                history_step=result.history_step[m][keep],
                history_loss=result.history_loss[m][keep],
                projections={k: int(v[m]) for k, v in result.counts.items()},
                eval_x=grid,
                eval_f=None if grid is None else net(grid),
                eval_grad=None if grid is None else net.gradient(grid),
                eval_target=None if grid is None else target_on(spec, grid),
                census=degeneracy_census(net, spec.D, canonical=canonical),
                dtype=result.dtype,
                device=result.device,
            )
        )
    return records
