"""Routers of the web database, one module per area."""
