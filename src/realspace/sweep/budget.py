"""What a planned sweep will cost before it starts: memory per network against the
shard budget, disk for the tracking store against the free space, runs against a stated
budget. A sweep over any of them is refused (with the estimate) unless confirmed."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .memory import bytes_per_network, default_budget
from .plan import PlannedCell

__all__ = [
    "stored_bytes_per_run",
    "size_problems",
    "shard_budget",
    "cuda_present",
    "graph_kernel_problem",
]


def cuda_present() -> bool:
    """Whether torch sees a CUDA device here. A machine without the CUDA driver library
    has none, and is told so without importing torch (seconds at every sweep's start,
    for a driver that trains nothing); elsewhere torch is asked."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    import torch

    return torch.cuda.is_available()


def graph_kernel_problem(device: str) -> str | None:
    """Why ``execution.kernel: graph`` cannot compile here for ``device`` ("cpu" or
    "cuda"), else None: torch.compile builds a CPU step with the C++ compiler $CXX (else
    g++), a CUDA step with Triton. Asked before any work, without importing torch."""
    if device.startswith("cuda"):
        if importlib.util.find_spec("triton") is None:
            return (
                "execution.kernel: graph compiles CUDA steps with Triton, which is not "
                "installed (pip install -e '.[gpu]'); or use kernel: auto"
            )
        return None
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        return (
            f"execution.kernel: graph compiles each shard's step with a C++ compiler, and "
            f"{cxx!r} was not found (install g++ or set CXX); or use kernel: auto"
        )
    return None


def shard_budget(cfg, workers: int) -> int:
    """Bytes one shard may use: the configured budget, else the device's share per worker."""
    if cfg.execution.memory_budget_mb:
        return int(cfg.execution.memory_budget_mb * 2**20)
    device = cfg.execution.device
    if device == "auto":
        device = "cuda" if cuda_present() else "cpu"
    share = default_budget(device)
    return share if device.startswith("cuda") else share // max(1, workers)


def stored_bytes_per_run(spec) -> int:
    """Bytes one network adds to the tracking store: its end point in its piece's arrays
    (float64, compressed: about 8 bytes a parameter), its loss curve (up to 200 points,
    compressed: about 600 bytes), its row of the cell's table (about 500 bytes) and its
    share of networks.html (about 300 bytes). A run per network (tracking.network_runs)
    adds about 50 kB each, not counted here."""
    P = spec.width * (spec.d + 3) + spec.d + 1
    return 8 * P + 1400


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**28 else f"{b / 2**20:.1f} MiB"


def size_problems(
    cells: Sequence[PlannedCell],
    shard_budget: int,
    max_runs: int | None = None,
    store_folder: str | Path | None = None,
    dtype="float32",
) -> tuple[dict, list[str]]:
    """(estimate, problems): the estimate's numbers, and one line per limit exceeded.
    ``cells``: a Plan's cells (a network's size and store do not depend on its seed)."""
    largest = max(cells, key=lambda c: bytes_per_network(c.spec, dtype), default=None)
    network = bytes_per_network(largest.spec, dtype) if largest else 0
    store = sum(stored_bytes_per_run(c.spec) * len(c) for c in cells)
    runs = sum(len(c) for c in cells)
    estimate = {"runs": runs, "largest_network_bytes": network, "store_bytes": store}
    problems = []
    if max_runs is not None and runs > max_runs:
        problems.append(
            f"{runs} runs planned, over the stated budget execution.max_runs = {max_runs}"
        )
    if largest and network > shard_budget:
        s = largest.spec
        problems.append(
            f"one network (width {s.width}, {s.n_points()} samples, d = {s.d}) needs about "
            f"{_gib(network)} to train, more than the {_gib(shard_budget)} a shard may use"
        )
    if store_folder is not None:
        folder = Path(store_folder)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        estimate["free_disk_bytes"] = free
        if store > free:
            problems.append(
                f"the tracking store would grow by about {_gib(store)}; "
                f"{_gib(free)} free in {folder}"
            )
    return estimate, problems
