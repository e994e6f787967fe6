"""What a user installs: the wheel, built directly or from the source distribution, holds
the package with its flows and tasks (realspace.flows, realspace.tasks), once each."""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = {
    "realspace/flows/sweep.py",
    "realspace/tasks/train.py",
    "realspace/app/service.py",
    "realspace/core/nets.py",
    "realspace/convex/binary.py",
}


def _build(args: list[str], out: Path) -> Path:
    # pip builds in an isolated environment with the pinned build backend (hatchling)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *args],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = out.glob("realspace-*.whl")
    return wheel


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


@pytest.mark.slow
def test_wheels_hold_flows_and_tasks(tmp_path):
    direct = _names(_build([str(ROOT)], tmp_path / "direct"))
    assert NEEDED <= set(direct) and len(direct) == len(set(direct))
    # the source distribution holds the top-level folders, not the links into src/
    sdist_dir = tmp_path / "sdist"
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(sdist_dir), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [sdist] = sdist_dir.glob("realspace-*.tar.gz")
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
    assert {"flows/sweep.py", "tasks/train.py"} <= members
    assert not any(m.startswith(("src/realspace/flows", "src/realspace/tasks")) for m in members)
    from_sdist = _names(_build([str(sdist)], tmp_path / "from-sdist"))
    assert sorted(from_sdist) == sorted(direct)
