"""The science core: shallow ReLU networks and what the project measures of them.

Pure float64 numpy (scipy and cvxpy where first used): no torch, pandas, MLflow, Prefect
or Ray. Each module rests only on those listed before it:

- ``nets``: networks on the cube Q = [-D, D]^d and their realizations;
- ``matching``: the exact bottleneck assignment;
- ``restricted``: the restricted set Omega_N, its conditions and margins;
- ``pathologies``: the families P0-P4 of inverse stability;
- ``canonical``: the canonical form, one representative of each realization in Omega_N;
- ``targets``: target functions, teachers, losses, the Gaussian population loss;
- ``distances``: Sobolev and uniform distances of realizations, parameter and fibre
  distances of parametrizations;
- ``constraints``: the ranges of a run's parameters, one table; ``choices``: the lists a
  run is made of and the rules between them; ``spec``: what one training run is
  (``RunSpec``); ``problem``: its data and initial parameters;
- ``census``: the degeneracy census of an end point;
- ``stacked``: the canonical forms, margins and census of many networks of one shape at
  once, equal network by network to those of ``canonical``, ``restricted`` and ``census``;
- ``inverse``, ``stability``: inverse-stability experiments and claim 3's measurements;
- ``witness``: claim 2's witnesses; ``spurious``: the teacher-student spurious minima.

The math: docs/science.md.
"""
