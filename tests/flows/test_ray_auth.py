"""A local Ray that realspace starts requires a token (Ray's own default, which realspace
used to turn off), and its token is held in the environment of realspace's processes,
not written to a file that other local users can read."""

import os
import subprocess
import sys
import textwrap

import pytest

CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}


def _run(code: str, home, timeout=300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**CLEAN, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_local_ray_gets_a_token_of_its_own_unless_the_user_configured_one(tmp_path):
    show = """
        import os
        from realspace.flows.runtime import quiet_environment
        quiet_environment(local_ray=True)
        print(os.environ.get("RAY_AUTH_MODE"), len(os.environ.get("RAY_AUTH_TOKEN", "")))
    """
    assert _run(show, tmp_path).stdout.split() == ["token", "64"]
    # the user's own choice stands: a mode, a token, a token file
    assert _run(show, tmp_path, RAY_AUTH_MODE="disabled").stdout.split() == ["disabled", "0"]
    assert _run(show, tmp_path, RAY_AUTH_TOKEN_PATH="/x").stdout.split() == ["None", "0"]
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("mine")
    assert _run(show, tmp_path).stdout.split() == ["None", "0"]


def test_a_cluster_driver_keeps_the_environments_authentication(tmp_path):
    code = """
        import os
        from realspace.flows.runtime import quiet_environment, worker_env
        quiet_environment(local_ray=False)
        print(os.environ.get("RAY_AUTH_MODE"), sorted(k for k in worker_env() if "AUTH" in k))
    """
    out = _run(code, tmp_path, PREFECT_API_AUTH_STRING="u:p")
    assert out.stdout.split() == ["None", "['PREFECT_API_AUTH_STRING']"], out.stderr


LOCAL_RAY = """
    import os, sys
    from realspace.flows.runtime import local_ray, quiet_environment, ray_task_runner
    quiet_environment(local_ray=True)
    import ray
    with local_ray(ray_task_runner(None, 1)):
        mode = ray.get(ray.remote(lambda: os.environ.get("RAY_AUTH_MODE")).remote())
        print(mode, ray.get_runtime_context().gcs_address, flush=True)
        sys.stdin.readline()  # held until the test has tried to join it
"""


@pytest.mark.slow
@pytest.mark.integration
def test_no_one_without_the_token_joins_a_local_ray(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LOCAL_RAY)],
        env={**CLEAN, "HOME": str(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        mode, gcs = proc.stdout.readline().split()
        assert mode == "token"
        join = f"import ray; ray.init(address={gcs!r}); print('joined')"
        for env in ({}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}):
            out = _run(join, tmp_path, timeout=120, **env)
            assert "joined" not in out.stdout, (env, out.stdout)
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Token authentication is enabled" not in err  # Ray's default's warning
    assert not (tmp_path / ".ray" / "auth_token").exists()  # nor its world-readable file
