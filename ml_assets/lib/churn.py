"""A synthetic subscription-customer stream for the churn spec, generated day by day.

Each day is a snapshot of customers with tenure, plan, charges, usage, support contacts,
billing and region, and a churn label drawn from a logistic model with seasonality and noise.
From ``drift_day`` on, feature distributions shift (less usage, more support contacts, more
manual billing) and the label relationship changes (region 'south' churns more, usage matters
less), which is what the monitoring must catch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ml_assets.lib.storage import write_atomic

PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")


@dataclass(frozen=True)
class ChurnStream:
    start: dt.date = dt.date(2026, 1, 1)
    customers_per_day: int = 400
    seed: int = 7
    drift_day: int | None = None  # index of the first drifted day (0 = start)

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def drifted(self, index: int) -> bool:
        return self.drift_day is not None and index >= self.drift_day

    def generate(self, index: int) -> pl.DataFrame:
        """Day ``index`` of the stream; the same stream settings always give the same rows."""
        rng = np.random.default_rng([self.seed, index])
        n, drift = self.customers_per_day, self.drifted(index)
        plan = rng.choice(PLANS, n, p=[0.5, 0.35, 0.15])
        base = np.select([plan == "basic", plan == "standard"], [30.0, 60.0], 95.0)
        tenure = np.minimum(rng.exponential(22, n).round(), 120).astype(np.int64)
        usage = rng.gamma(4.0, 6.0, n) * (0.65 if drift else 1.0)
        support = rng.poisson(1.4 if drift else 0.8, n).astype(np.float64)
        billing = rng.choice(["auto_pay", "manual"], n, p=[0.45, 0.55] if drift else [0.7, 0.3])
        region = rng.choice(REGIONS, n)
        charges = base + rng.normal(0, 6, n)
        season = 0.3 * np.sin(2 * np.pi * self.day(index).timetuple().tm_yday / 365.25)
        logit = (
            -1.3
            - 0.045 * tenure
            + 0.6 * (plan == "basic")
            + 0.015 * (charges - 60)
            - (0.015 if drift else 0.05) * usage
            + 0.45 * support
            + 0.7 * (billing == "manual")
            + (1.3 * (region == "south") if drift else 0.0)
            + season
            + rng.normal(0, 0.3, n)
        )
        churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
        frame = pl.DataFrame(
            {
                "customer_id": [f"C{index:04d}-{i:05d}" for i in range(n)],
                "snapshot_date": [self.day(index)] * n,
                "tenure_months": tenure,
                "plan": plan,
                "monthly_charges": charges.round(2),
                "usage_hours": usage.round(2),
                "support_contacts": support,
                "billing": billing,
                "region": region,
                "churned": churned,
            }
        )
        return _with_missing(frame, rng)

    def write(self, directory: Path, days: range) -> list[Path]:
        """One parquet file per day, ``<directory>/<YYYY-MM-DD>.parquet`` (``directory``: a
        local path or a UPath), each appearing whole: a sensor never reads half a day."""
        paths = []
        for index in days:
            path = directory / f"{self.day(index).isoformat()}.parquet"
            write_atomic(path, self.generate(index).write_parquet)
            paths.append(path)
        return paths


def _with_missing(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Usage is missing for ~3% of rows, support contacts for ~2% (real CRM exports are gappy)."""
    n = frame.height
    return frame.with_columns(
        pl.when(pl.Series(rng.random(n) < 0.03))
        .then(None)
        .otherwise(pl.col("usage_hours"))
        .alias("usage_hours"),
        pl.when(pl.Series(rng.random(n) < 0.02))
        .then(None)
        .otherwise(pl.col("support_contacts"))
        .alias("support_contacts"),
    )
