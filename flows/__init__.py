"""Prefect wiring: tasks that wrap pipeline/ functions, flows, deployments and the CLI. No domain logic here."""
