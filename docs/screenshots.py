"""Screenshots of the running UIs (`make ui`) after `make demo`, for the README.

Drives Debian's Chromium headless through Playwright and saves PNGs under docs/screenshots/:
the churn asset graph, the evaluation_report asset page, the drift_report partitions, the
evaluation report and the drift page as MLflow's artifact view shows them, and the co2
report's backtest folds. The URLs come from the Dagster instance (DAGSTER_HOME), so they are
the ones a user clicks.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
from playwright.sync_api import Page, sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
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


def _wait_for(url: str, seconds: float = 180) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"{url} does not answer after {seconds:.0f} s: is `make ui` running?")


def _metadata(asset: list[str], name: str) -> str:
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if event is None or event.asset_materialization is None:
            raise SystemExit(f"{'/'.join(asset)} is not materialized: run `make demo` first")
        value = event.asset_materialization.metadata[name]
        return str(getattr(value, "url", None) or getattr(value, "path", None) or value.value)


def _shot(page: Page, url: str, name: str, settle_ms: int = 4000) -> Path:
    page.goto(url, wait_until="networkidle", timeout=90_000)
    page.wait_for_timeout(settle_ms)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    sys.stdout.write(f"{path}  <- {url}\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dagster", default="http://127.0.0.1:3000")
    parser.add_argument("--mlflow", default="http://127.0.0.1:5000")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    _wait_for(f"{args.dagster}/server_info")
    _wait_for(f"{args.mlflow}/health")
    OUT.mkdir(exist_ok=True)
    report = _metadata(["churn", "evaluation_report"], "report")
    drift = _metadata(["churn", "drift_report"], "drift_page")
    co2_report = _metadata(["co2", "evaluation_report"], "report_file")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        d = args.dagster
        _shot(page, f"{d}/asset-groups/churn/lineage", "asset_graph")
        _shot(page, f"{d}/assets/churn/evaluation_report", "evaluation_report_asset")
        _shot(page, f"{d}/assets/churn/drift_report?view=partitions", "drift_partitions")
        _shot(page, report, "report_in_mlflow", settle_ms=6000)
        _shot(page, drift, "drift_page_in_mlflow", settle_ms=6000)
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
