"""`make serve`: the champion answers real HTTP requests through MLflow's scoring server with
the numbers its pyfunc gives in process, and a request it cannot score gets a 4xx that names
the column."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest
import requests
import statsmodels.api as sm

from ml_assets.definitions import build_definitions
from ml_assets_tests.helpers import free_port, run_job, start_process, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def _rows(n: int) -> list[dict]:
    frame = pl.from_pandas(sm.datasets.fair.load_pandas().data).drop("affairs")
    return frame.head(n).to_dicts()


def test_the_served_champion_answers_as_its_pyfunc(home: Path, tmp_path: Path) -> None:
    assert run_job(build_definitions(), "train_affairs", dg.DagsterInstance.ephemeral()).success
    port = free_port()
    log = tmp_path / "serve.log"
    serve = ["make", "-s", "-C", str(ROOT), "serve", "SPEC=affairs", f"PORT={port}"]
    server = start_process(serve, dict(os.environ), log)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + START_TIMEOUT_S
        while not _answers(f"{url}/ping"):
            if server.poll() is not None or time.monotonic() > end:
                pytest.fail(f"make serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        rows = _rows(50)
        answer = requests.post(f"{url}/invocations", json={"dataframe_records": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        served = np.asarray(answer.json()["predictions"], dtype=float)
        local = mlflow.pyfunc.load_model("models:/affairs@champion").predict(
            pl.DataFrame(rows).to_pandas()
        )
        np.testing.assert_allclose(served, np.asarray(local, dtype=float), rtol=1e-12)
        assert ((served > 0) & (served < 1)).all()

        one = {k: v for k, v in rows[0].items() if k != "educ"}
        missing = requests.post(f"{url}/invocations", json={"dataframe_records": [one]}, timeout=30)
        assert missing.status_code == 400, missing.text
        assert "missing inputs ['educ']" in missing.json()["message"], missing.text
        wrong = {**rows[0], "age": "forty"}
        typed = requests.post(f"{url}/invocations", json={"dataframe_records": [wrong]}, timeout=30)
        assert typed.status_code == 400, typed.text
        assert "column age" in typed.json()["message"], typed.text
    finally:
        stop_process_group(server, signal.SIGTERM, 30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
