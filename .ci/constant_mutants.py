"""Mutants of the rules' module-level constants, which mutmut (it mutates function bodies
only) leaves alone: each threshold a verdict rests on is moved, and the rule tests must
fail. Then a few whole-rule edits that a one-token mutation cannot make (a point estimate
for an interval, a verdict branch made unreachable). One mutant at a time, on a copy of
src/ (the working tree is never edited).

    .venv/bin/python .ci/constant_mutants.py

Prints one line per mutant (killed / SURVIVED, and the first failing test) and exits
non-zero when one survives. docs/mutation.md records the last run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULE_TESTS = [
    "tests/report/test_report_claims.py",
    "tests/report/test_report_claims14.py",
    "tests/stats/test_stats.py",
    "tests/stats/test_stats_minima.py",
]

# (module under src/realspace, the constant's assignment as written, its mutant)
MUTANTS = [
    ("report/claims.py", "FAR_SHARE = 0.1", "FAR_SHARE = 0.5"),
    ("report/claims.py", "FAR_SHARE = 0.1", "FAR_SHARE = 0.0"),
    ("report/claims.py", "STABILITY_RATE = 0.5", "STABILITY_RATE = 0.4"),
    ("report/claims.py", "RATE_SLACK = 0.02", "RATE_SLACK = 0.2"),
    ("report/claims.py", "RATE_SLACK = 0.02", "RATE_SLACK = 0.0"),
    ("report/claims.py", "SHARP_MARGIN = 0.1", "SHARP_MARGIN = 1.0"),
    ("report/claims.py", "SHARP_MARGIN = 0.1", "SHARP_MARGIN = 0.0"),
    ("report/claims.py", "MIN_NETWORKS = 2", "MIN_NETWORKS = 1"),
    ("report/verdict_tables.py", "CONVERGED_GRAD = 1e-6", "CONVERGED_GRAD = 1e-3"),
    ("report/verdict_tables.py", "CONVERGED_GRAD = 1e-6", "CONVERGED_GRAD = 1e-9"),
    (
        "report/verdict_tables.py",
        'DECIDING = ("convex_exact", "convex_lower_bound", "convex_relaxation_lower_bound")',
        'DECIDING = ("convex_exact", "convex_lower_bound", "convex_relaxation_lower_bound", '
        '"teacher_realizable")',
    ),
    (
        "report/verdict_tables.py",
        'DECIDING = ("convex_exact", "convex_lower_bound", "convex_relaxation_lower_bound")',
        'DECIDING = ("convex_exact",)',
    ),
    ("report/verdict_tables.py", "RATIO_MARGIN = 2.0", "RATIO_MARGIN = 10.0"),
    ("report/verdict_tables.py", "RATIO_MARGIN = 2.0", "RATIO_MARGIN = 1.0"),
    ("report/verdict_tables.py", "MIN_PAIRS = 16", "MIN_PAIRS = 8"),
    ("report/verdict_tables.py", "MIN_PAIRS = 16", "MIN_PAIRS = 17"),
    ("stats/claim4.py", "EXPRESSIVITY_RTOL = 1e-6", "EXPRESSIVITY_RTOL = 1e-2"),
    (
        "stats/gaps.py",
        'EXACT_AT_WIDTH = ("teacher_realizable", "convex_exact")',
        'EXACT_AT_WIDTH = ("convex_exact",)',
    ),
    (
        "stats/gaps.py",
        'LOWER_BOUNDS = (*EXACT_AT_WIDTH, "convex_lower_bound", "convex_relaxation_lower_bound")',
        "LOWER_BOUNDS = EXACT_AT_WIDTH",
    ),
    # whole-rule edits
    (  # claim 3 on the point estimate instead of the interval's upper end
        "report/claims.py",
        'holds = len(omega) > 0 and bool((omega["ci_high"] >= low).all())',
        'holds = len(omega) > 0 and bool((omega["exponent"] >= low).all())',
    ),
    (  # claim 4's "not supported" made unreachable
        "report/verdict_tables.py",
        '"unrestricted_better": bool(lo > margin),',
        '"unrestricted_better": False,',
    ),
    (  # claim 4 on the point estimate instead of the upper bound
        "report/verdict_tables.py",
        '"non_inferior": bool(hi <= margin),',
        '"non_inferior": bool(np.nanmedian(diff) <= margin),',
    ),
    (  # claim 1 refuted even where the far share falls with width
        "report/claims.py",
        'and exact["above_10eps"].iloc[1] >= exact["above_10eps"].iloc[0]',
        "and True",
    ),
]


def run_one(module: str, old: str, new: str, tmp: Path) -> tuple[bool, str]:
    """(killed, first failing test) of one mutant, on a fresh copy of src/."""
    src = tmp / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ROOT / "src", src)  # the flows/tasks links are copied as folders
    path = src / "realspace" / module
    text = path.read_text()
    if text.count(old) != 1:
        raise SystemExit(f"{module}: {old!r} is not written once; update MUTANTS")
    path.write_text(text.replace(old, new))
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *RULE_TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = re.search(r"^FAILED (\S+)", out.stdout, re.M)
    return out.returncode != 0, failed.group(1) if failed else ""


def main() -> int:
    survived = 0
    with tempfile.TemporaryDirectory() as tmp:
        for module, old, new in MUTANTS:
            killed, test = run_one(module, old, new, Path(tmp))
            survived += not killed
            verdict = f"killed by {test}" if killed else "SURVIVED"
            print(f"{module}: {new}  ->  {verdict}", flush=True)
    print(f"{len(MUTANTS) - survived} of {len(MUTANTS)} killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
