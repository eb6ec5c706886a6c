"""readthrough's domain: one module per stage, pure functions over typed data. Never imports Prefect."""

__version__ = "0.1.0"
