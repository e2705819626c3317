"""Speed and quality benchmarks, each a script: `python benchmarks/NAME.py --help`.

A regular package, not a namespace folder: opacus 1.6 installs a top-level `benchmarks`
package into site-packages, and a regular package anywhere on sys.path wins over a namespace
portion, so without this file `from benchmarks.ingest import ...` found opacus's.
"""
