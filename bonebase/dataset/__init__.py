"""Dataset versions of the curated training view: export, split, DVC versioning."""
