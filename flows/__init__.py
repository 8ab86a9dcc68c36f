"""Prefect flows that compose the `pipeline` library; the library never imports this package."""
