"""Sweep configurations for the tests: one small good document, varied by each test
through its top-level keys, and written to YAML where a command reads a file."""

import copy
from pathlib import Path

import yaml

# the smallest good document: the keys a sweep must give (the rest have defaults)
GOOD = {"name": "t", "targets": [{"name": "sin"}], "widths": [2, 4]}
# the pieces several sweeps share
SIN_AND_TEACHER = [{"name": "sin"}, {"name": "teacher", "teacher_width": 2}]
LIGHT_ANALYSIS = {"pathology_max_log2": 3, "seed_pairs": 1, "retrain_seeds": 0}


def sweep_config(**overrides) -> dict:
    """The good document with ``overrides`` replacing (or adding) its top-level keys; a
    fresh copy each call, so that a test may change what it got."""
    return copy.deepcopy({**GOOD, **overrides})


def write_config(path: Path, doc: dict) -> Path:
    """``doc`` written to ``path`` as YAML; returns ``path``."""
    path.write_text(yaml.safe_dump(doc))
    return path
