"""Plain, typed ML code (data, models, statistics, tracking). Never imports dagster."""
