"""Online serving of a built-in spec's champion through `make serve` (MLflow's scoring server).

On fresh stores: the built-in ``affairs`` spec is trained (``dagster job execute -j
train_affairs``), then ``make serve SPEC=affairs`` starts the server on a free port of
127.0.0.1. Measured over HTTP with one keep-alive client, one request at a time:

- single row: ``--requests`` sequential POSTs of one row each (after 50 to warm up); p50, p99;
- batches: ``--batches`` sequential POSTs of 1,000 rows each; rows/s from the median request.

Next to them, the same pyfunc called in this process on the same rows (no HTTP, no JSON), the
floor the server adds its cost to.

Run: .venv/bin/python bench/serving.py [--requests 1000] [--batches 50]
Goal (issue 15): p99 <= 20 ms single row, >= 40,000 rows/s in 1,000-row batches, 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import ROOT, job_env, run_measured  # noqa: E402

BATCH = 1000
WARMUP = 50
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wait_until_up(session, url: str, server: subprocess.Popen, log: Path) -> None:  # noqa: ANN001
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        try:
            if session.get(f"{url}/ping", timeout=1).status_code == 200:
                return
        except OSError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"make serve did not come up:\n{log.read_text()[-3000:]}")


def _timed(session, url: str, payload: dict) -> float:  # noqa: ANN001
    start = time.perf_counter()
    answer = session.post(f"{url}/invocations", json=payload, timeout=30)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise SystemExit(f"the server answered {answer.status_code}: {answer.text[:500]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=50)
    args = parser.parse_args()
    import polars as pl
    import requests
    import statsmodels.api as sm

    out = sys.stdout
    stores = Path(tempfile.mkdtemp(prefix="ml_assets_serving_"))
    (stores / "specs").mkdir()  # the built-in specs only
    env = job_env(stores, stores / "specs")
    uri = env["MLFLOW_TRACKING_URI"]
    dagster = str(Path(sys.executable).with_name("dagster"))
    run_measured(
        [dagster, "job", "execute", "-m", "ml_assets.definitions", "-j", "train_affairs"], env
    )

    frame = pl.from_pandas(sm.datasets.fair.load_pandas().data).drop("affairs")
    rows = frame.to_dicts()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = stores / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            ["make", "-s", "-C", str(ROOT), "serve", "SPEC=affairs", f"PORT={port}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        session = requests.Session()
        _wait_until_up(session, url, server, log)
        for i in range(WARMUP):
            _timed(session, url, {"dataframe_records": [rows[i % len(rows)]]})
        single = [
            _timed(session, url, {"dataframe_records": [rows[i % len(rows)]]}) * 1000
            for i in range(args.requests)
        ]
        batches = [
            _timed(session, url, {"dataframe_records": rows[(i * BATCH) % 5000 :][:BATCH]})
            for i in range(args.batches)
        ]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    os.environ["MLFLOW_TRACKING_URI"] = uri
    import mlflow

    model = mlflow.pyfunc.load_model("models:/affairs@champion")
    one, thousand = frame.head(1).to_pandas(), frame.head(BATCH).to_pandas()
    local_one = []
    for _ in range(200):
        start = time.perf_counter()
        model.predict(one)
        local_one.append((time.perf_counter() - start) * 1000)
    local_batch = []
    for _ in range(20):
        start = time.perf_counter()
        model.predict(thousand)
        local_batch.append(time.perf_counter() - start)
    shutil.rmtree(stores, ignore_errors=True)

    batch_s = statistics.median(batches)
    out.write(
        f"machine: {os.cpu_count()} cores; spec affairs (its champion), MLflow scoring server\n"
    )
    out.write(
        f"single row, {args.requests} sequential requests: p50 {statistics.median(single):.1f} ms, "
        f"p99 {_percentile(single, 0.99):.1f} ms, max {max(single):.1f} ms "
        f"(goal p99 <= 20 ms)\n"
    )
    out.write(
        f"1,000-row batches, {args.batches} sequential requests: median {batch_s * 1000:.1f} ms, "
        f"{BATCH / batch_s:,.0f} rows/s (goal >= 40,000)\n"
    )
    out.write(
        f"in process (pyfunc.predict, no HTTP): one row {statistics.median(local_one):.2f} ms, "
        f"1,000 rows {statistics.median(local_batch) * 1000:.1f} ms "
        f"({BATCH / statistics.median(local_batch):,.0f} rows/s)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
