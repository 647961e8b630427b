"""ml_assets: spec-driven, audited ML pipelines as Dagster software-defined assets.

Point Dagster tools at ``ml_assets.definitions``; this package does not re-export ``defs``.
"""

__version__ = "0.1.0"
