"""realspace: how shallow ReLU network parameters relate to the functions they compute.

The package root re-exports the science core: pure float64 numpy (and scipy), importable
without torch, pandas, MLflow, Prefect or Ray. Networks and their realizations, the
restricted set Omega_N, the canonical form, distances, the pathology families, the targets,
and what a run is (``spec``) with its data (``problem``). The layers above it, each
importing only those below: ``train`` (torch) and ``stats`` (pandas), ``report``,
``sweep`` (planning), ``tracking`` (MLflow), ``tasks`` and ``flows`` (Prefect, Ray),
``service`` and ``cli``. The math is in docs/science.md.
"""

from .core.canonical import canonical_form
from .core.distances import (
    Distance,
    fibre_distance,
    flip_neurons,
    param_distance,
    sobolev_distance,
    uniform_distance,
)
from .core.matching import bottleneck_assignment
from .core.nets import ShallowNet
from .core.pathologies import PATHOLOGIES, pathology
from .core.restricted import in_restricted_set, restricted_set_margins
from .core.spec import RunSpec
from .core.targets import (
    TARGETS,
    arccos_kernel,
    gaussian_population_loss,
    gaussian_population_loss_grad,
    mse,
    random_teacher,
    sample_points,
    target_function,
    weight_decay_penalty,
)


def __getattr__(name: str):
    # One place for the version: pyproject.toml, read from the installed metadata on first
    # use (importlib.metadata costs a sixth of a second, which every CLI call would pay).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("realspace")
        except PackageNotFoundError:  # a source tree on sys.path without an install
            return "0+unknown"
    raise AttributeError(f"module 'realspace' has no attribute {name!r}")


# Bumped whenever a change alters what a run computes; it enters every run key.
SCIENCE_VERSION = "1"


__all__ = [
    "RunSpec",
    "ShallowNet",
    "canonical_form",
    "in_restricted_set",
    "restricted_set_margins",
    "Distance",
    "sobolev_distance",
    "uniform_distance",
    "param_distance",
    "fibre_distance",
    "flip_neurons",
    "bottleneck_assignment",
    "pathology",
    "PATHOLOGIES",
    "TARGETS",
    "target_function",
    "sample_points",
    "random_teacher",
    "arccos_kernel",
    "gaussian_population_loss",
    "gaussian_population_loss_grad",
    "weight_decay_penalty",
    "mse",
]
