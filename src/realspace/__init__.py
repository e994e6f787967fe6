"""realspace: how shallow ReLU network parameters relate to the functions they compute.

The science core (this package's modules other than the orchestration helpers) is
pure float64 numpy: networks and their realizations, the restricted set Omega_N, the
canonical form, distances, the pathology families and the targets.
"""

from pathlib import Path as _Path

from .canonical import canonical_form
from .distances import (
    Distance,
    fibre_distance,
    flip_neurons,
    param_distance,
    sobolev_distance,
    uniform_distance,
)
from .matching import bottleneck_assignment
from .nets import ShallowNet
from .pathologies import PATHOLOGIES, pathology
from .restricted import in_restricted_set, restricted_set_margins
from .targets import (
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

__version__ = "0.1.0"

# The orchestration (flows/, tasks/) sits at the repository's top level and ships inside
# the wheel as realspace.flows and realspace.tasks. From a source checkout (editable
# install) the same names resolve to the top-level folders.
_checkout = _Path(__file__).resolve().parents[2]
if (_checkout / "flows" / "__init__.py").is_file() and (_checkout / "pyproject.toml").is_file():
    __path__.append(str(_checkout))  # noqa: F821 (the package's own __path__)
# Bumped whenever a change alters what a run computes; it enters every run key.
SCIENCE_VERSION = "1"


def __getattr__(name):
    # realspace.load_runs reads MLflow: imported on first use, so that the science core
    # imports without the tracking stack
    if name == "load_runs":
        from .tracking.load import load_runs

        return load_runs
    raise AttributeError(f"module 'realspace' has no attribute {name!r}")


__all__ = [
    "load_runs",
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
