"""bonebase web: the browser/server database over the platform's PostgreSQL and object store.

``create_app`` (in :mod:`web.app`) builds the FastAPI application; ``bonebase web`` serves it.
"""
