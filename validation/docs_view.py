"""Data Docs page views that reuse compiled Jinja templates across pages and submissions.

GX builds a new Jinja environment per page view, so every page recompiles ~50 templates (about
2 s per suite on a 2,000-instance submission). These views share one in-memory bytecode cache;
Jinja checks each template's source checksum, so the pages are byte-for-byte what GX renders.
They are plugged in through the Data Docs site config (``view`` of each section builder).

GX also copies its static files (3.4 MB of images and styles) into the site on every build;
``LinkedSiteBuilder`` hard-links them instead, once per folder.
"""

from __future__ import annotations

from pathlib import Path

import great_expectations
from great_expectations.render.renderer.site_builder import SiteBuilder
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket

from validation.docs_offline import link_tree

GX_STATIC = Path(great_expectations.__file__).parent / "render" / "view" / "static"


class _MemoryBytecodeCache(BytecodeCache):
    """Process-wide bytecode store keyed by Jinja's template key."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._store.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._store[bucket.key] = bucket.bytecode_to_string()


_CACHE = _MemoryBytecodeCache()


class CachedPageView(DefaultJinjaPageView):
    """GX's page view with the shared bytecode cache."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE


class CachedIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with the shared bytecode cache."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE


class LinkedSiteBuilder(SiteBuilder):
    """GX's site builder whose static files are hard-linked into the site, not copied."""

    # GX passes its runtime objects by the names __init__ declares: data_context is one, and
    # site_name (the registration name, a hash) is replaced by the config's ``title``.
    def __init__(self, data_context, store_backend, site_name=None, runtime_environment=None,
                 title: str | None = None, **kwargs) -> None:
        super().__init__(data_context, store_backend, site_name=title or site_name,
                         runtime_environment=runtime_environment, **kwargs)
        static = Path(store_backend["base_directory"]) / "static"
        self.target_store.copy_static_assets = lambda *a, **k: link_tree(GX_STATIC, static)


def site_config(base_directory: str, title: str = "Validation") -> dict:
    """A local-filesystem Data Docs site writing to ``base_directory`` with the cached views;
    ``title`` heads its index page."""
    view = {"module_name": __name__, "class_name": CachedPageView.__name__}
    return {
        "module_name": __name__,
        "class_name": LinkedSiteBuilder.__name__,
        "title": title,
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": base_directory,
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "view": {"module_name": __name__, "class_name": CachedIndexPageView.__name__},
        },
        "site_section_builders": {
            "expectations": {"view": view},
            "validations": {"view": view},
            "profiling": "None",  # no profiling runs here; skip scanning for them
        },
    }
