"""Screenshots of both UIs after `make demo`, for the README (`make screenshots`).

Drives Debian's Chromium headless through Playwright and saves PNGs under docs/screenshots/:
the churn asset graph, the evaluation_report asset page, the drift_report partitions, the
evaluation report and the drift page as MLflow's artifact view shows them, and the co2
report's backtest folds. The URLs come from the Dagster instance (DAGSTER_HOME): they are the
links a user clicks. The UIs are the ones `make ui` runs; they are started here (and stopped
after) unless they already answer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from playwright.sync_api import Page, sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
BIN = Path(sys.executable).parent
DAGSTER, MLFLOW = "http://127.0.0.1:3000", "http://127.0.0.1:5000"
# Without the background-networking switches Chromium keeps calling hosts this machine
# cannot reach.
CHROMIUM_ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def _wait_for(url: str, seconds: float = 180) -> None:
    end = time.monotonic() + seconds
    while not _answers(url):
        if time.monotonic() > end:
            raise SystemExit(f"{url} does not answer after {seconds:.0f} s")
        time.sleep(2)


@contextlib.contextmanager
def _uis(log_dir: Path) -> Iterator[None]:
    """The two servers of `make ui`, unless they run already."""
    if _answers(f"{DAGSTER}/server_info") and _answers(f"{MLFLOW}/health"):
        yield
        return
    commands = [
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", os.environ["MLFLOW_TRACKING_URI"]]
        + ["--host", "127.0.0.1", "--port", "5000", "--workers", "1"],
        [str(BIN / "dagster"), "dev", "-m", "ml_assets.definitions"]
        + ["-h", "127.0.0.1", "-p", "3000"],
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    servers = []
    for command, log in zip(commands, ("mlflow_ui.log", "dagster_ui.log"), strict=True):
        with (log_dir / log).open("w") as out:
            servers.append(
                subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    # dagster dev stops on SIGINT (and on SIGTERM only as SIGINT is set), which a
                    # shell's background job inherits ignored: restore it.
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                )
            )
    try:
        _wait_for(f"{MLFLOW}/health")
        _wait_for(f"{DAGSTER}/server_info")
        yield
    finally:
        for server in servers:  # dagster dev stops its webserver and daemon on an interrupt
            os.killpg(server.pid, signal.SIGINT)
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _metadata(asset: list[str], name: str) -> str:
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if event is None or event.asset_materialization is None:
            raise SystemExit(f"{'/'.join(asset)} is not materialized: run `make demo` first")
        value = event.asset_materialization.metadata[name]
        return str(value.value)


def _shot(page: Page, url: str, name: str, settle_ms: int = 5000) -> None:
    page.goto(url, wait_until="load", timeout=90_000)
    page.wait_for_timeout(settle_ms)
    page.screenshot(path=str(OUT / f"{name}.png"))
    sys.stdout.write(f"{OUT / name}.png  <- {url}\n")


def _dismiss(page: Page, name: str) -> None:
    """Close a first-visit dialog or panel (the UIs remember it in the browser)."""
    button = page.get_by_role("button", name=name, exact=True)
    if button.count():
        button.first.click()
        page.wait_for_timeout(500)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    report = _metadata(["churn", "evaluation_report"], "report")
    drift = _metadata(["churn", "drift_report"], "drift_page")
    co2_report = _metadata(["co2", "evaluation_report"], "report_file")
    with _uis(Path(os.environ["DAGSTER_HOME"])), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(DAGSTER, wait_until="load", timeout=90_000)
        page.wait_for_timeout(4000)
        _dismiss(page, "Skip")  # the community newsletter dialog
        location = "ml_assets.definitions"
        _shot(page, f"{DAGSTER}/locations/{location}/asset-groups/churn/lineage", "asset_graph")
        page.set_viewport_size({"width": 1440, "height": 1600})
        _shot(page, f"{DAGSTER}/assets/churn/evaluation_report", "evaluation_report_asset")
        page.set_viewport_size({"width": 1440, "height": 900})
        _shot(page, f"{DAGSTER}/assets/churn/drift_report?view=partitions", "drift_partitions")
        page.goto(report, wait_until="load", timeout=90_000)
        page.wait_for_timeout(5000)
        _dismiss(page, "Close")  # MLflow's assistant opens by itself on the first visit
        page.set_viewport_size({"width": 1440, "height": 1400})
        _shot(page, report, "report_in_mlflow")
        _shot(page, drift, "drift_page_in_mlflow")
        page.set_viewport_size({"width": 1200, "height": 1000})
        page.goto(Path(co2_report).as_uri(), wait_until="load")
        page.get_by_role("heading", name="Backtest folds", exact=True).evaluate(
            "h => window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 10)"
        )
        page.screenshot(path=str(OUT / "co2_backtests.png"))
        sys.stdout.write(f"{OUT / 'co2_backtests.png'}  <- {co2_report}\n")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
