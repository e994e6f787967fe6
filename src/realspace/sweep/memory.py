"""How many networks of one shape fit in a memory budget.

Peak memory of a training step, per network, in elements of the training dtype:
  activations  ~ 5 B N      (z, rho(z), the mask, the backpropagated (B, N) term, a gather)
  data         ~ 2 n (d+1)  (inputs and targets, plus the minibatch copy)
  parameters   ~ 7 P        (params, grads, new params, two optimizer moments, projection copy)
  projection   ~ 3 N^2      (projected restricted runs: cosines and masks of all neuron pairs)
  intrinsic    ~ 4 P        (intrinsic restricted runs: the realized network, the pulled-back
                             gradient; their merges happen off the device, a slice at a time)
  Gaussian     ~ 8 N (N+k)  (pairwise angles and kernels, student-student and student-teacher)
  outputs      ~ 3 B m      (m > 1 outputs: logits, their softmax and its gradient)
  teacher      ~ n k        (a teacher's hidden layer on the data, when its labels are drawn)
with B the batch size, n the data size, m the outputs, k the teacher's width and
P = N (d + 1) + m (N + 1 + d) parameters (N (d + 2) + d + 1 for m = 1). A 1.5x safety
factor covers allocator slack.
"""

from __future__ import annotations

import os

from ..core.choices import TEACHER_TARGETS
from ..core.spec import RunSpec

__all__ = ["bytes_per_network", "networks_per_shard", "default_budget"]

SAFETY = (3, 2)  # 1.5x, a ratio of integers: no float overflow at any size


def _itemsize(dtype) -> int:
    """Bytes per element of a training dtype, given as a name or a torch dtype."""
    name = str(dtype).removeprefix("torch.")
    if name not in ITEMSIZE:
        raise ValueError(f"training dtype must be one of {sorted(ITEMSIZE)}, got {dtype!r}")
    return ITEMSIZE[name]


ITEMSIZE = {"float32": 4, "float64": 8}


def bytes_per_network(spec: RunSpec, dtype="float32") -> int:
    """Estimated peak bytes of one network of ``spec`` in a training step (see above)."""
    item = _itemsize(dtype)
    N, d, m = spec.width, spec.d, spec.outputs
    P = N * (d + 1) + m * (N + 1 + d)
    n = spec.n_points()
    B = spec.batch_size if spec.batch_size and spec.batch_size < n else n
    elems = 5 * B * N + 2 * n * (d + 1) + 7 * P
    if m > 1:
        elems += 3 * B * m
    if spec.restricted and spec.restricted_method == "projection":
        elems += 3 * N * N
    elif spec.restricted:
        elems += 4 * P
    if spec.loss == "gaussian":
        elems += 8 * N * (N + spec.teacher_width)
    elif spec.target in TEACHER_TARGETS:
        elems += n * spec.teacher_width
    return elems * item * SAFETY[0] // SAFETY[1]


def default_budget(device: str = "cpu") -> int:
    """Bytes a shard may use: 70% of free GPU memory (device "cuda" or "cuda:N"), or half
    the available RAM."""
    if str(device).startswith("cuda"):
        import torch  # only to ask the driver for free memory

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(0.7 * free)
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024 // 2
    except (OSError, KeyError, ValueError):
        return (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 4


def networks_per_shard(spec: RunSpec, budget_bytes: int, dtype="float32") -> int:
    """Largest M whose estimated peak fits in ``budget_bytes`` (at least 1)."""
    return max(1, int(budget_bytes // bytes_per_network(spec, dtype)))
