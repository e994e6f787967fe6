"""MLflow layout of a sweep.

- one experiment per sweep name;
- one parent run per sweep, found again by the tag ``realspace.sweep_key``;
- one child run per network (tag ``mlflow.parentRunId``), identified by the tag
  ``realspace.run_key``, with params (the resolved RunSpec), tags, metrics (end-point
  numbers and the subsampled loss curve) and artifacts (``realization.npz``,
  ``params.npz``, ``record.json``);
- a child becomes FINISHED only after all of its data is written (one batched call for
  params, tags and metrics, one for the artifact folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np

from .. import __version__

__all__ = [
    "SweepStore",
    "open_store",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "git_commit",
    "check_reachable",
]

KEY_TAG = "realspace.run_key"
SWEEP_TAG = "realspace.sweep_key"
PARENT_TAG = "mlflow.parentRunId"
STAGE_TAG = "realspace.stage"  # analysis children (pathology | seed_pairs | retrain)


def default_tracking_uri(cwd: str | os.PathLike | None = None) -> str:
    """The embedded store: ``mlruns.db`` (SQLite) in the working directory."""
    return f"sqlite:///{Path(cwd or os.getcwd()).resolve() / 'mlruns.db'}"


def resolve_tracking_uri(cli: str | None = None, config: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the config's, else the embedded store."""
    return cli or os.environ.get("MLFLOW_TRACKING_URI") or config or default_tracking_uri()


@cache
def git_commit() -> str | None:
    """The commit of the realspace checkout, when it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _flat_params(spec_dict: dict) -> dict[str, str]:
    out = {}
    for k, v in spec_dict.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": str(vv) for kk, vv in v.items()})
        else:
            out[k] = str(v)
    return out


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


class SweepStore:
    """One sweep's experiment, parent run and children in an MLflow tracking store."""

    def __init__(self, tracking_uri: str, experiment: str, create: bool = True):
        """Open (and with ``create``, create if missing) the sweep's experiment; without
        ``create`` a missing experiment leaves ``experiment_id`` None (nothing logged yet)."""
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None and not create:
            exp_id = None
        elif exp is None:
            location = None
            if tracking_uri.startswith("sqlite:///"):
                # artifacts beside the database, not in the current directory of whoever
                # happens to log
                db = Path(tracking_uri.removeprefix("sqlite:///"))
                location = (db.parent / "mlartifacts").resolve().as_uri()
            exp_id = self.client.create_experiment(experiment, artifact_location=location)
        elif exp.lifecycle_stage != "active":
            raise ValueError(
                f"experiment {experiment!r} is deleted in {tracking_uri}; "
                "restore it or choose another sweep name"
            )
        else:
            exp_id = exp.experiment_id
        self.experiment_id = exp_id

    # -- parent ----------------------------------------------------------------
    def parent_run(self, sweep_key: str, name: str, tags: dict | None = None) -> str:
        """The sweep's parent run id, created on first use and found again later."""
        found = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{SWEEP_TAG}` = '{sweep_key}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        tags = {SWEEP_TAG: sweep_key, "realspace.version": __version__, **(tags or {})}
        if git_commit():
            tags["realspace.git_commit"] = git_commit()
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def finish_parent(self, parent_id: str, metrics: dict, status: str = "FINISHED") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            parent_id,
            metrics=[
                Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v) is not None
            ],
        )
        self.client.set_terminated(parent_id, status)

    # -- children ----------------------------------------------------------------
    def child_runs(self, parent_id: str, finished_only: bool = False) -> list:
        """Every active child run of the parent (MLflow Run objects), in paged queries."""
        query = f"tags.`{PARENT_TAG}` = '{parent_id}'"
        if finished_only:
            query += " and attributes.status = 'FINISHED'"
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], query, max_results=50000, page_token=token
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def children(self, parent_id: str) -> dict[str, list[tuple[str, str]]]:
        """run key -> [(run id, status)] of every active child, in one paged query."""
        out: dict[str, list[tuple[str, str]]] = {}
        for run in self.child_runs(parent_id):
            key = run.data.tags.get(KEY_TAG)
            if key:
                out.setdefault(key, []).append((run.info.run_id, run.info.status))
        return out

    def reconcile(self, parent_id: str) -> tuple[set[str], dict[str, str]]:
        """Finished keys, and the run ids (key -> id) of the finished ones.

        Children left RUNNING, FAILED or KILLED by a crash are deleted (their runs will
        be trained again); if a key has several FINISHED children (which realspace never
        creates, but a user might), the oldest is kept and the others are deleted.
        """
        done: dict[str, str] = {}
        for key, runs in self.children(parent_id).items():
            finished = sorted(r for r, status in runs if status == "FINISHED")
            for run_id, status in runs:
                if status != "FINISHED" or (finished and run_id != finished[0]):
                    self.client.delete_run(run_id)
            if finished:
                done[key] = finished[0]
        return set(done), done

    def status_counts(self, parent_id: str | None) -> Counter:
        """Counter of (key, 'done' | 'failed' | 'running')."""
        counts: Counter = Counter()
        if parent_id is None:
            return counts
        for key, runs in self.children(parent_id).items():
            statuses = {s for _, s in runs}
            state = (
                "done"
                if "FINISHED" in statuses
                else ("running" if "RUNNING" in statuses else "failed")
            )
            counts[(key, state)] += 1
        return counts

    def find_parent(self, sweep_key: str) -> str | None:
        if self.experiment_id is None:
            return None
        found = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{SWEEP_TAG}` = '{sweep_key}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        return found[0].info.run_id if found else None

    def log_record(
        self, parent_id: str, key: str, shard_id: str, record, node: str | None = None
    ) -> str:
        """Create one child run with all of a record's data, then mark it FINISHED."""
        from mlflow.entities import Metric, Param

        spec = record.spec
        summary = record.summary()
        tags = {
            PARENT_TAG: parent_id,
            KEY_TAG: key,
            "realspace.shard": shard_id,
            "parametrization": spec.parametrization,
            "width": str(spec.width),
            "seed": str(spec.seed),
            "target": _target_tag(spec),
            "status": record.status,
            "certified": str(record.certified),
            "dtype": record.dtype,
            "device": record.device,
            "realspace.version": __version__,
        }
        if git_commit():
            tags["realspace.git_commit"] = git_commit()
        if node:
            tags["realspace.node"] = node  # the Ray node that trained it
        name = f"{tags['target']}-{spec.parametrization[0]}-w{spec.width}-s{spec.seed}"
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, 0)
            for k, v in summary.items()
            if k in METRIC_KEYS or k.startswith(("census_", "proj_"))
            if _finite(v) is not None
        ]
        # the loss curve at <= CURVE_POINTS steps (the full <= 200 points are in params.npz)
        keep = np.flatnonzero(np.isfinite(record.history_loss))
        keep = (
            keep[np.unique(np.linspace(0, len(keep) - 1, CURVE_POINTS).astype(int))]
            if len(keep) > CURVE_POINTS
            else keep
        )
        metrics += [
            Metric(
                "train_objective", float(record.history_loss[i]), now, int(record.history_step[i])
            )
            for i in keep
        ]
        params = [Param(k, v) for k, v in _flat_params(spec.to_dict()).items()]
        self.client.log_batch(run_id, metrics=metrics, params=params)
        artifact_dir = _local_dir(run.info.artifact_uri)
        if artifact_dir is not None:
            # a local artifact store: write in place (what log_artifacts would copy there)
            artifact_dir.mkdir(parents=True, exist_ok=True)
            write_artifacts(artifact_dir, key, record)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                write_artifacts(Path(tmp), key, record)
                self.client.log_artifacts(run_id, tmp)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _existing(self, parent_id: str, tag: str, value: str) -> set[str]:
        """Run keys already FINISHED among the children with ``tag`` = ``value``; children
        left unfinished by an interrupted attempt are deleted (they will be redone)."""
        found = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{tag}` = '{value}'",
            max_results=50000,
        )
        done = set()
        for run in found:
            if run.info.status == "FINISHED":
                done.add(run.data.tags.get(KEY_TAG))
            else:
                self.client.delete_run(run.info.run_id)
        return done

    def log_shard(
        self,
        parent_id: str,
        shard_id: str,
        keys: list[str],
        records: list,
        node=None,
        after_each=None,
    ) -> list[str]:
        """Log a shard's records, idempotently: a retry after a failure part-way (a
        tracking server that went away) skips the runs already FINISHED and redoes the
        rest, so no run is ever logged twice. ``after_each()`` is called after each run."""
        done = self._existing(parent_id, "realspace.shard", shard_id)
        ids = []
        for key, rec in zip(keys, records, strict=True):
            if key not in done:
                ids.append(self.log_record(parent_id, key, shard_id, rec, node=node))
                if after_each:
                    after_each()
        return ids

    def log_stage(
        self, parent_id: str, key: str, stage: str, name: str, rows: list[dict], params: dict
    ) -> str:
        """One analysis unit as a child run: its inputs as params, its rows as
        ``table.json``, and per numeric column the median as a metric; FINISHED last.
        Idempotent: a unit already FINISHED is not logged again."""
        from mlflow.entities import Metric, Param

        if key in self._existing(parent_id, KEY_TAG, key):
            return ""

        tags = {
            PARENT_TAG: parent_id,
            KEY_TAG: key,
            STAGE_TAG: stage,
            "realspace.version": __version__,
        }
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        numeric = sorted({k for r in rows for k, v in r.items() if _is_number(v)})
        metrics = []
        for k in numeric:
            vals = np.array([float(r[k]) for r in rows if _is_number(r.get(k))])
            vals = vals[np.isfinite(vals)]
            if len(vals):
                metrics.append(Metric(f"median_{k}", float(np.median(vals)), now, 0))
        flat = _flat_params({k: v for k, v in params.items() if not isinstance(v, list)})
        flat.update({k: ",".join(map(str, v)) for k, v in params.items() if isinstance(v, list)})
        self.client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, v[:6000]) for k, v in flat.items()],
        )
        self._write(run_id, run.info.artifact_uri, {"table.json": json.dumps(rows, indent=1)})
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_report(self, parent_id: str, folder: Path, metrics: list[tuple[str, float, int]]):
        """The report folder as the parent's ``report/`` artifacts, and per-cell
        aggregates as metrics (name, value, step = width)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, int(step)) for k, v, step in metrics if _finite(v) is not None
        ]
        for i in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(parent_id, metrics=batch[i : i + 1000])
        self.client.log_artifacts(parent_id, str(folder), artifact_path="report")

    def _write(self, run_id: str, artifact_uri: str, files: dict[str, str]) -> None:
        local = _local_dir(artifact_uri)
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                tmp = local / (name + ".tmp")
                tmp.write_text(text)
                os.replace(tmp, local / name)
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                (Path(tmp) / name).write_text(text)
            self.client.log_artifacts(run_id, tmp)


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


# end-point numbers logged as metrics (with the census_* and proj_* counts); the rest of a
# record's summary (margins, kink distance, ...) is in its record.json
METRIC_KEYS = (
    "loss",
    "diverged_step",
    "objective",
    "grad_norm",
    "min_eig",
    "certified",
    "near_kink",
    "steps",
    "margin_min_kink_margin",
    "margin_min_hyperplane_angle",
    "margin_max_imbalance",
)
CURVE_POINTS = 50


def _local_dir(uri: str) -> Path | None:
    """The folder of a file:// (or plain path) artifact URI, None for remote stores."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _target_tag(spec) -> str:
    from ..sweep.plan import target_label

    return target_label(spec)


def _atomic(path: Path, write) -> None:
    """``write(file)`` into a temporary sibling, then rename: a reader (or a crash) never
    sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
    os.replace(tmp, path)


def write_artifacts(folder: Path, key: str, record) -> None:
    """realization.npz, params.npz and record.json of one run into ``folder`` (each
    written atomically)."""
    if record.eval_x is not None:
        _atomic(
            folder / "realization.npz",
            lambda fh: np.savez(
                fh,
                x=record.eval_x,
                f=record.eval_f,
                grad=record.eval_grad,
                target=record.eval_target,
            ),
        )
    can = record.canonical
    arrays = {
        **{k: np.asarray(v) for k, v in record.params.items()},
        **{
            f"canonical_{k}": np.asarray(v)
            for k, v in dict(a=can.a, b=can.b, c=can.c, e=can.e, w=can.linear).items()
        },
        "history_step": record.history_step,
        "history_loss": record.history_loss,
    }
    _atomic(folder / "params.npz", lambda fh: np.savez(fh, **arrays))
    doc = {
        "run_key": key,
        "spec": record.spec.to_dict(),
        "summary": record.summary(),
        "census": record.census,
        "projections": record.projections,
    }
    text = json.dumps(doc, indent=1, default=_json_default)
    _atomic(folder / "record.json", lambda fh: fh.write(text.encode()))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


_STORES: dict[tuple[str, str], SweepStore] = {}


def open_store(tracking_uri: str, experiment: str) -> SweepStore:
    """A SweepStore per (tracking URI, experiment), reused within a process. A masked URI
    (see ``secrets.hide_uri``) is resolved to the real one first."""
    from .secrets import reveal_uri

    tracking_uri = reveal_uri(tracking_uri)
    key = (tracking_uri, experiment)
    if key not in _STORES:
        _STORES[key] = SweepStore(tracking_uri, experiment)
    return _STORES[key]


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before any work, when the tracking store cannot be reached: an HTTP
    server must answer (any status), a database host accept a TCP connection, a SQLite
    file's folder exist. Raises ConnectionError naming the (masked) URI.

    MLflow's own client retries an unreachable server for minutes; this check answers
    within ``timeout`` seconds.
    """
    import socket
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    from .secrets import mask

    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    try:
        if scheme in ("http", "https"):
            port = parsed.port or (443 if scheme == "https" else 80)
            base = f"{parsed.scheme}://{parsed.hostname}:{port}"
            try:
                urllib.request.urlopen(base + "/health", timeout=timeout).close()
            except urllib.error.HTTPError:
                pass  # it answered: reachable (authentication is MLflow's business)
        elif scheme in ("postgresql", "mysql", "mssql"):
            default = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}[scheme]
            socket.create_connection((parsed.hostname, parsed.port or default), timeout).close()
        elif scheme == "sqlite":
            folder = Path(uri.removeprefix("sqlite:///")).parent
            if not folder.is_dir():
                raise OSError(f"folder {folder} does not exist")
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ConnectionError(
            f"tracking store {mask(uri)} is not reachable: {mask(str(reason))}"
        ) from None
