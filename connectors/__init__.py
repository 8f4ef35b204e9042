"""HTTP clients for the external systems. Connectors never import Prefect."""
