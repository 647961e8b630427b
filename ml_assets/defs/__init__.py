"""Dagster adapters: resources, the IO manager and the per-spec asset factory."""
