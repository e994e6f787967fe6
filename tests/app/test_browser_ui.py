"""A person's view: `realspace ui` on a small finished sweep, opened in headless Chromium.

Needs Debian's chromium and chromium-driver and selenium (see browser.py); without them the
test is skipped, unless REALSPACE_REQUIRE_BROWSER=1 (set by CI).
"""

import contextlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from browser import chromium
from browser import need_browser as _need_browser
from browser import wait_for as _wait_for
from factories import sweep_config, write_config
from procs import CLI, free_port, quiet_env, stop_group, wait_http

from realspace.tracking.layout import run_url

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    _need_browser()
    tmp = tmp_path_factory.mktemp("ui")
    doc = sweep_config(
        name="browser-check",
        widths=[2],
        seeds=2,
        optimizer={"steps": 30},
        data={"n_samples": 16},
        analysis={"pathology_max_log2": 2, "seed_pairs": 0, "retrain_seeds": 0},
    )
    cfg = write_config(tmp / "b.yaml", doc)
    res = subprocess.run(
        CLI + ["sweep", str(cfg), "--in-process", "--quiet"],
        cwd=tmp,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp / 'mlruns.db'}")
    exp = client.get_experiment_by_name("browser-check")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "realspace.sweep_key" in r.data.tags)
    pid = parent.info.run_id
    cell = next(r for r in runs if "realspace.cell" in r.data.tags)
    assert cell.data.tags["mlflow.parentRunId"] == pid and cell.info.status == "FINISHED"
    # 4 networks (at most 64): each is also a run, a child of its cell
    network = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == cell.info.run_id)
    return tmp, cfg, exp.experiment_id, parent, cell, network


def _only_on_loopback(port: int) -> None:
    """The UI answers on 127.0.0.1 and on none of the machine's other addresses."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True)
    others = [a for a in out.stdout.split() if not a.startswith("127.") and ":" not in a]
    for addr in others:
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((addr, port)) != 0, f"the UI is reachable on {addr}"


@contextlib.contextmanager
def _realspace_ui(tmp: Path, cfg: Path):
    """`realspace ui CONFIG` started in ``tmp`` (its output in ``tmp/ui.out``); yields
    its URL once it answers, checked to answer on loopback only."""
    port = free_port()
    proc = subprocess.Popen(
        CLI + ["ui", str(cfg), "--port", str(port)],
        cwd=tmp,
        env=quiet_env(),
        stdout=open(tmp / "ui.out", "w"),  # noqa: SIM115 - the process holds it until killed
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc, 120, tmp / "ui.out")
        _only_on_loopback(port)
        yield url
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def ui(finished_sweep):
    tmp, cfg, *_ = finished_sweep
    with _realspace_ui(tmp, cfg) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _need_browser()
    driver = chromium(tmp_path_factory.mktemp("chrome"))
    yield driver
    driver.quit()


def _wait_for_element(driver, tag, timeout=60):
    """Wait until the page holds an element ``tag``; return the first."""
    deadline = time.time() + timeout
    while True:
        found = driver.find_elements("tag name", tag)
        if found:
            return found[0]
        if time.time() > deadline:
            body = driver.find_element("tag name", "body").text
            raise AssertionError(f"page never held a <{tag}>; it showed:\n{body[:3000]}")
        time.sleep(0.5)


@pytest.mark.slow  # a sweep, an MLflow server and Chromium: 70 s here
def test_the_ui_shows_the_sweep_its_runs_and_the_report(finished_sweep, ui, browser):
    tmp, _, exp_id, parent, cell, network = finished_sweep
    shots = Path(os.environ.get("REALSPACE_SCREENSHOTS", tmp))
    # the page `realspace ui CONFIG` prints is the experiment's runs table (MLflow 3 would
    # otherwise open its GenAI overview), listing the sweep's parent run
    [page] = re.findall(r"http://\S+", (tmp / "ui.out").read_text())
    assert page.startswith(ui) and f"/experiments/{exp_id}/runs?" in page, page
    browser.get(page)
    body = _wait_for(browser, "browser-check", parent.info.run_name, "matching runs")
    assert "Traces: 0" not in body
    browser.save_screenshot(str(shots / "experiment.png"))
    # a cell run page (a child of the parent, with its networks' runs as children) shows
    # the cell's params, in MLflow's model-training navigation: its side bar (Runs,
    # Models, Model registry) and "Runs" in the breadcrumb, never the GenAI one's
    # "Evaluations" breadcrumb, Traces overview or Judges (a link without the view
    # parameter opens that)
    browser.get(run_url(ui, exp_id, cell.info.run_id))
    body = _wait_for(
        browser,
        "Model registry",
        cell.info.run_name,
        "Parameters",
        "parametrization",
        cell.data.params["parametrization"],
        "seeds",
        "Parent run",
        parent.info.run_name,
        "Child runs",
        network.info.run_name,
    )
    assert "Evaluations" not in body and "Judges" not in body and "Observability" not in body
    browser.save_screenshot(str(shots / "cell.png"))
    # its artifacts: the tables, and networks.html previewed (the networks, realizations)
    browser.get(f"{ui}/#/experiments/{exp_id}/runs/{cell.info.run_id}/artifacts/networks.html")
    _wait_for(browser, "networks.html", "shards")
    frame = _wait_for_element(browser, "iframe")
    browser.switch_to.frame(frame)
    _wait_for(browser, f"{cell.info.run_name}: 2 networks", "objective")
    assert len(browser.find_elements("css selector", "td svg")) == 2  # each realization drawn
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "cell-artifacts.png"))
    # a network run page (a child of its cell) shows the network's params
    browser.get(run_url(ui, exp_id, network.info.run_id))
    _wait_for(
        browser,
        "Model registry",
        network.info.run_name,
        "Parameters",
        "n_samples",
        network.data.params["n_samples"],
        "Parent run",
        cell.info.run_name,
    )
    browser.save_screenshot(str(shots / "network.png"))
    # the parent's artifacts hold the report
    browser.get(f"{ui}/#/experiments/{exp_id}/runs/{parent.info.run_id}/artifacts/report")
    _wait_for(browser, "report.html", "report.md", "gap_vs_width.png")
    browser.save_screenshot(str(shots / "artifacts.png"))


@pytest.mark.slow
def test_the_ui_shows_a_sweep_of_20000_networks(tmp_path, browser):
    """At scale: a sweep of 20,000 tiny networks (4 cells of 5,000 seeds) opens on its
    runs (the parent and its 4 cells, not 20,000 runs), a cell's page shows its metrics,
    and its networks.html is previewed with its rows."""
    _need_browser()
    doc = sweep_config(
        name="browser-20k",
        widths=[2, 4],
        seeds=5000,
        optimizer={"steps": 5},
        data={"n_samples": 16},
        analysis={"report": False},
    )
    cfg = write_config(tmp_path / "big.yaml", doc)
    res = subprocess.run(
        CLI + ["sweep", str(cfg), "--no-analysis", "--quiet"],
        cwd=tmp_path,
        env=quiet_env(RAY_ADDRESS="local"),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert res.returncode == 0 and "20000 trained" in res.stdout, res.stdout + res.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    exp = client.get_experiment_by_name("browser-20k")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 5  # the parent and 4 cell runs: no run per network at this size
    parent = next(r for r in runs if "realspace.sweep_key" in r.data.tags)
    cell = next(r for r in runs if "realspace.cell" in r.data.tags)
    with _realspace_ui(tmp_path, cfg) as url:
        [page] = re.findall(r"http://\S+", (tmp_path / "ui.out").read_text())
        browser.get(page)
        body = _wait_for(browser, "browser-20k", parent.info.run_name, "matching runs")
        assert "Traces: 0" not in body
        browser.get(f"{url}/#/experiments/{exp.experiment_id}/runs/{cell.info.run_id}")
        _wait_for(browser, cell.info.run_name, "Metrics", "networks", "objective_median")
        browser.get(
            f"{url}/#/experiments/{exp.experiment_id}/runs/{cell.info.run_id}"
            "/artifacts/networks.html"
        )
        browser.switch_to.frame(_wait_for_element(browser, "iframe"))
        _wait_for(browser, f"{cell.info.run_name}: 5000 networks", "objective", timeout=120)
        rows = browser.find_elements("css selector", "tr")
        assert len(rows) == 2001  # the header and the best 2,000 (the rest: in the tables)
        assert len(browser.find_elements("css selector", "td svg")) == 200
        browser.switch_to.default_content()
        shots = Path(os.environ.get("REALSPACE_SCREENSHOTS", tmp_path))
        browser.save_screenshot(str(shots / "cell-20k.png"))
