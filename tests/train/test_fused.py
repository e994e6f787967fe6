"""The fused Triton objective against the float64 PyTorch reference: compiled, on the GPU,
where CUDA is present; in Triton's interpreter, on the CPU, where it is not."""

import os

import torch  # imports no Triton: CUDA is probed before the interpreter is chosen

# The interpreter is the fallback where no CUDA device exists. Triton reads the choice when
# a kernel is decorated (realspace.train.fused_kernels' import), so it is made here, before
# anything below imports Triton. A TRITON_INTERPRET the caller sets is kept.
CALLER_INTERPRET = os.environ.get("TRITON_INTERPRET")  # as the test run was started
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# the interpreter runs the kernels on CPU tensors, compiled kernels run on CUDA ones
DEVICES = ["cpu"] if INTERPRETED else ["cuda"]

import numpy as np  # noqa: E402
import pytest  # noqa: E402

triton = pytest.importorskip("triton")

from realspace.train import RunSpec, TrainOptions, train_shard  # noqa: E402
from realspace.train.fused import fused_mse_objective  # noqa: E402
from realspace.train.model import mse_objective  # noqa: E402


def test_the_kernels_are_compiled_where_cuda_is_and_interpreted_elsewhere():
    """The choice above reached Triton: the kernels are interpreted exactly where no CUDA
    device exists (or the caller asked for the interpreter), and compiled for the GPU
    otherwise, so that the cases below run on the device they name."""
    from triton.runtime.interpreter import InterpretedFunction

    from realspace.train.fused_kernels import gradient_kernel, residual_kernel

    if CALLER_INTERPRET is None:
        assert INTERPRETED == (not torch.cuda.is_available())
    for kernel in (residual_kernel, gradient_kernel):
        assert isinstance(kernel, InterpretedFunction) == INTERPRETED, type(kernel)


def params(M, N, d, rng, bias=True, trainable_c=True, restricted=True):
    t = lambda *s: torch.as_tensor(rng.standard_normal(s))  # noqa: E731
    return {
        "a": t(M, N, d),
        "b": t(M, N) if bias else torch.zeros(M, N, dtype=torch.float64),
        "c": t(M, N) if trainable_c else torch.ones(M, N, dtype=torch.float64),
        "e": t(M),
        "w": t(M, d) if restricted else torch.zeros(M, d, dtype=torch.float64),
    }


CASES = [
    # (M, n, N, d, bias, trainable c, restricted): sizes off the block multiples
    (2, 37, 13, 1, True, True, False),
    (3, 70, 33, 3, True, True, True),
    (1, 5, 2, 16, True, True, True),
    (2, 64, 32, 2, False, False, False),  # the Gaussian-like model: no bias, c = 1
    # the largest (16 s here on the CPU) runs with the slow tests
    pytest.param(4, 129, 65, 5, True, False, True, marks=pytest.mark.slow),
    (1, 1, 1, 1, True, True, False),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("M, n, N, d, bias, trainable_c, restricted", CASES)
def test_fused_gradients_match_the_float64_reference(
    device, M, n, N, d, bias, trainable_c, restricted
):
    rng = np.random.default_rng(M * 1000 + n + N + d)
    p = params(M, N, d, rng, bias, trainable_c, restricted)
    X = torch.as_tensor(rng.uniform(-1, 1, (M, n, d)))
    y = torch.as_tensor(rng.standard_normal((M, n)))
    lam = torch.full((M,), 0.01, dtype=torch.float64)
    J0, L0, g0 = mse_objective(p, X, y, lam)
    on = {k: v.to(device) for k, v in p.items()}
    J, L, g = fused_mse_objective(
        on, X.to(device), y.to(device), lam.to(device), block_s=16, block_n=8
    )
    assert torch.allclose(J.cpu(), J0, rtol=1e-5) and torch.allclose(L.cpu(), L0, rtol=1e-5)
    for k in g0:
        err = (g[k].cpu() - g0[k]).abs().max() / g0[k].abs().max().clamp_min(1e-12)
        assert err < 1e-4, (k, float(err))


def test_the_trainer_with_the_fused_kernel_follows_the_dense_path():
    specs = [
        RunSpec(target="sin", d=2, n_samples=25, width=6, steps=30, seed=s, parametrization=p)
        for s in range(2)
        for p in ("restricted",)
    ]
    dense = train_shard(specs, TrainOptions(kernel="dense"))
    fused = train_shard(specs, TrainOptions(kernel="fused"))
    for k in ("a", "b", "c", "e", "w"):
        np.testing.assert_allclose(fused.params[k], dense.params[k], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fused.history_loss, dense.history_loss, rtol=1e-4)


def test_fused_refuses_what_it_does_not_cover():
    with pytest.raises(ValueError, match="d <= 16"):
        train_shard(
            [RunSpec(target="sin", d=17, n_samples=17, width=2, steps=1)],
            TrainOptions(kernel="fused"),
        )


@pytest.mark.slow
def test_the_compiled_dense_kernel_follows_the_dense_path():
    specs = [RunSpec(target="sin", d=2, n_samples=16, width=4, steps=5, seed=s) for s in range(2)]
    dense = train_shard(specs, TrainOptions(kernel="dense"))
    compiled = train_shard(specs, TrainOptions(kernel="compiled"))
    for k in ("a", "b", "c", "e"):
        np.testing.assert_allclose(compiled.params[k], dense.params[k], rtol=1e-4, atol=1e-6)
