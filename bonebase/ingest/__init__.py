"""Ingestion of a site's submission: scan, parse, de-identify, validate, store, quarantine, receipt.

The Prefect flow in ``flows/ingest.py`` orchestrates these steps; each step is a plain function here
so it can be tested and reused without Prefect.
"""
