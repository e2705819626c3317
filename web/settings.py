"""Settings of the web database (``BONEBASE_*`` environment variables).

Kept beside the platform's ``bonebase.config.Settings`` (which it reuses for the home folder,
database, object store and secret) so that the web's knobs stay with the web.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BONEBASE_", extra="ignore")

    open_data: bool = Field(
        default=False, description="Anonymous visitors may browse de-identified cases."
    )
    diagnosis_url: str | None = Field(
        default=None, description="Base URL of the served model (`bentoml serve`), for /diagnose."
    )
    api_token: str | None = Field(default=None, description="Bearer token of the served model.")
    session_hours: float = Field(default=12.0, gt=0)
    # Secure cookies need HTTPS; behind a TLS proxy in production set BONEBASE_COOKIE_SECURE=true.
    cookie_secure: bool = False
    page_size: int = Field(default=50, ge=5, le=500)
    # Password guessing: a user name (or a client address) with this many wrong passwords within
    # the window is refused, even with the right one, until the window has passed them.
    signin_max_failures: int = Field(
        default=5, ge=1, description="Wrong passwords per user name within the window."
    )
    signin_max_failures_per_address: int = Field(
        default=20, ge=1,
        description="Wrong passwords per client address within the window (any user names)."
    )
    signin_window_minutes: float = Field(default=15.0, gt=0)
