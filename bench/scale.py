"""The whole train job at scale against a hand-written LightGBM script, in one run.

Writes a seeded synthetic table (``bench/synthetic.py``: 16 floats, 4 string categoricals, a
binary label), declares a user spec over it (random split 60/20/20, LightGBM only), then, for
each repeat, runs ``dagster job execute -j train_scale_bench`` on fresh stores (a new Dagster
instance, MLflow SQLite store and data dir: a first run, as a new user has it) and the plain
script ``bench/plain_lightgbm.py`` on the same file, alternately. Each command is timed from
start to exit, imports included; peak RSS is the process's own (``wait4``).

Run: .venv/bin/python bench/scale.py [--rows 1000000] [--budget 1] [--repeats 3]
Prints each step's time (from the run's event log), the job's and the script's medians, the
ratio, peak RSS, and the test AUC of both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC_NAME = "scale_bench"
SPEC = """\
name: {name}
description: synthetic scale benchmark (bench/synthetic.py)
task: classification
source: {{path: {path}}}
target: label
split: {{strategy: random, validation_fraction: 0.2, test_fraction: 0.2, seed: 42}}
candidates:
  lightgbm: {{budget: {budget}, num_boost_round: 300, search: {search}}}
"""
DEFAULT_SEARCH = "{num_leaves: [4, 64], learning_rate: [0.01, 0.3]}"


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_gib: float
    stdout: str
    stderr: str
    rss: list[tuple[float, float]]  # (epoch seconds, GiB) samples every ~0.2 s


def _sample_rss(pid: int, samples: list[tuple[float, float]], done: threading.Event) -> None:
    status = Path(f"/proc/{pid}/status")
    while not done.wait(0.2):
        try:
            line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return
        samples.append((time.time(), int(line.split()[1]) / 2**20))


def run_measured(cmd: list[str], env: dict[str, str]) -> Measured:
    """Wall time and the child's own peak RSS; raises with its output when it fails."""
    start = time.perf_counter()
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=ROOT)
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, samples, done))
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{stdout[-3000:]}\n{stderr[-6000:]}"
        )
    return Measured(seconds, usage.ru_maxrss / 2**20, stdout, stderr, samples)


def job_env(stores: Path, specs: Path) -> dict[str, str]:
    home = stores / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{stores / 'mlflow.db'}",
        "ML_ASSETS_MLFLOW_ARTIFACTS": (stores / "mlartifacts").as_uri(),
        "ML_ASSETS_DATA_DIR": str(stores / "data"),
        "ML_ASSETS_SPECS": str(specs),
        "ML_ASSETS_HOME": str(ROOT),
    }


def step_seconds(dagster_home: Path) -> tuple[dict[str, tuple[float, float]], float]:
    """(start, end) epoch seconds per step and the run's own duration, from the instance's
    event log."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        run = instance.get_runs(limit=1)[0]
        started: dict[str, float] = {}
        steps: dict[str, tuple[float, float]] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or record.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                started[record.step_key] = record.timestamp
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                steps[record.step_key] = (started[record.step_key], record.timestamp)
        stats = instance.get_run_stats(run.run_id)
        duration = (stats.end_time or 0) - (stats.start_time or 0)
    return steps, duration


def champion_auc(stores: Path) -> str:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{stores / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name(SPEC_NAME).experiment_id],
        filter_string="tags.gate_passed != ''",
    )
    metrics = runs[0].data.metrics
    return (
        f"{metrics['test_roc_auc']:.4f} [{metrics['test_roc_auc_ci_lower']:.4f}, "
        f"{metrics['test_roc_auc_ci_upper']:.4f}]"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--budget", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=str(ROOT / ".bench"))
    parser.add_argument("--keep", action="store_true", help="keep the last run's stores")
    parser.add_argument(
        "--next-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time a second run on the same stores (what every later run costs)",
    )
    args = parser.parse_args()
    out = sys.stdout
    data = Path(args.data_dir) / f"synthetic_{args.rows}.parquet"
    if not data.exists():
        start = time.perf_counter()
        synthetic.write(data, args.rows)
        out.write(f"wrote {data} ({args.rows:,} rows) in {time.perf_counter() - start:.1f} s\n")
    work = Path(tempfile.mkdtemp(prefix="ml_assets_scale_"))
    specs = work / "specs"
    specs.mkdir()
    search = "{}" if args.budget == 1 else DEFAULT_SEARCH
    (specs / f"{SPEC_NAME}.yaml").write_text(
        SPEC.format(name=SPEC_NAME, path=data.resolve(), budget=args.budget, search=search)
    )
    python = sys.executable
    dagster = str(Path(python).with_name("dagster"))
    job_cmd = [dagster, "job", "execute", "-m", "ml_assets.definitions", "-j", f"train_{SPEC_NAME}"]
    plain_cmd = [python, str(ROOT / "bench" / "plain_lightgbm.py"), str(data)]
    kinds = ["first", "next"] if args.next_run else ["first"]
    jobs: dict[str, list[JobRun]] = {k: [] for k in kinds}
    plains: list[Measured] = []
    for i in range(args.repeats):
        stores = work / f"run{i}"
        env = job_env(stores, specs)
        jobs["first"].append(run_job(job_cmd, env, stores))
        plains.append(run_measured(plain_cmd, dict(os.environ)))
        if args.next_run:  # the same stores: contract learned, a champion to compare with
            jobs["next"].append(run_job(job_cmd, env, stores))
        plain = json.loads(plains[-1].stdout.strip().splitlines()[-1])
        plain_steps = ", ".join(f"{k} {v:.1f} s" for k, v in plain["seconds"].items())
        runs = "; ".join(
            f"{k} job {jobs[k][-1].measured.seconds:.1f} s (run {jobs[k][-1].duration:.1f} s)"
            for k in kinds
        )
        out.write(
            f"repeat {i + 1}: {runs}; plain {plains[-1].seconds:.1f} s ({plain_steps}); test AUC "
            f"job {champion_auc(stores)}, plain {plain['test_roc_auc']:.4f}\n"
        )
        if i < args.repeats - 1 or not args.keep:
            shutil.rmtree(stores)
    plain_s = statistics.median(m.seconds for m in plains)
    out.write(
        f"\nrows={args.rows:,} budget={args.budget} repeats={args.repeats} "
        f"cores={os.cpu_count()} (medians)\n"
        f"plain script       {plain_s:8.1f} s   peak RSS "
        f"{max(m.peak_rss_gib for m in plains):5.2f} GiB\n"
    )
    for kind in kinds:
        write_summary(out, kind, jobs[kind], plain_s)
    if args.keep:
        out.write(f"stores of the last run: {work}\n")
    else:
        shutil.rmtree(work)
    return 0


@dataclass(frozen=True)
class JobRun:
    measured: Measured
    duration: float
    steps: dict[str, float]
    step_rss: dict[str, float]


def run_job(cmd: list[str], env: dict[str, str], stores: Path) -> JobRun:
    measured = run_measured(cmd, env)
    steps, duration = step_seconds(stores / "dagster_home")
    rss = {
        k: max((g for t, g in measured.rss if start <= t <= end), default=float("nan"))
        for k, (start, end) in steps.items()
    }
    return JobRun(measured, duration, {k: end - start for k, (start, end) in steps.items()}, rss)


def write_summary(out: TextIO, kind: str, runs: list[JobRun], plain_s: float) -> None:
    job_s = statistics.median(r.measured.seconds for r in runs)
    what = "fresh stores" if kind == "first" else "same stores, learned contract, champion"
    out.write(f"{kind} run of the job ({what}):\n")
    for key in runs[0].steps:
        seconds = statistics.median(r.steps[key] for r in runs)
        rss = max(r.step_rss[key] for r in runs)
        out.write(f"  step {key:50s} {seconds:8.2f} s   RSS up to {rss:5.2f} GiB\n")
    peak = max(r.measured.peak_rss_gib for r in runs)
    out.write(
        f"  job   {job_s:8.1f} s   peak RSS {peak:5.2f} GiB   "
        f"ratio to plain {job_s / plain_s:5.2f}x\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
