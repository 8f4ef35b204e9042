"""Koppel: Prefect pipelines between AFAS Profit, TOPdesk and an occupational-health system."""

__version__ = "0.1.0"
