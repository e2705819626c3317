"""One settings object for the whole platform.

Every value comes from the environment (``BONEBASE_*``, ``DATABASE_URL``, the usual ``AWS_*``
variables for S3) with embedded defaults that run on one machine under ``BONEBASE_HOME``.
Entry points (cli, flows, pipelines) build it once with :func:`get_settings` and pass the values
they need down into the library.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bonebase import secret_key
from bonebase.errors import ConfigError

SECRET_FILE = "secret.key"
#: The folder name of a home; looked for in the current folder and its parents, then in ~.
HOME_DIR = ".bonebase"
# Schemes a dask.distributed scheduler listens on (distributed.comm registry).
DASK_SCHEMES = ("tcp://", "tls://", "ucx://", "ws://", "wss://", "inproc://")
# Marks a key that `bonebase init` generated for development; production refuses it.
DEV_SECRET_PREFIX = "dev-"


class Settings(BaseSettings):
    """Platform settings; see docs/configuration in the README for each variable."""

    model_config = SettingsConfigDict(env_prefix="BONEBASE_", extra="ignore")

    # None: found as git finds .git (see find_home); the resolved folder is always a Path.
    home: Path | None = Field(default=None, description="Folder for all embedded state.")
    env: Literal["development", "test", "production"] = "development"
    # DATABASE_URL is the conventional name, so it is read without the prefix.
    # repr=False: a Settings printed or logged (an error, a debugger) shows neither the key nor
    # the database password.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL", repr=False)
    secret: str | None = Field(
        default=None, description="Consortium pseudonymisation key.", repr=False
    )
    storage_url: str | None = Field(
        default=None, description="s3://bucket/prefix, or a local path; default HOME/objects."
    )
    s3_endpoint_url: str | None = Field(default=None, description="For MinIO, Ceph or moto.")
    s3_region: str | None = None
    uid_root: str = Field(
        default="2.25", description="UID root under which de-identified UIDs are remapped."
    )
    task_runner: Literal["process", "dask"] = Field(
        default="process",
        description="Where ingest's file batches run: a process pool on this machine, or Dask.",
    )
    dask_address: str | None = Field(
        default=None, description="tcp://host:8786 of a running Dask scheduler; none = a "
        "temporary local cluster per ingest run.",
    )
    ingest_workers: int | None = Field(
        default=None, ge=1, le=1024,
        description="Processes for file batches (pool or temporary Dask cluster); default: cores.",
    )
    # Limits on what a submission may claim (issue #15, hostile input): over-limit input is
    # refused with a reason instead of being expanded, decoded or stored whole.
    max_file_mb: float = Field(
        default=2048, gt=0,
        description="Largest single file (or zip entry, once expanded) a submission may hold, MiB.",
    )
    max_zip_ratio: float = Field(
        default=200, gt=1,
        description="Largest expansion ratio of a zip entry (uncompressed / compressed size).",
    )
    max_zip_total_mb: float = Field(
        default=50 * 1024, gt=0, description="Largest total expanded size of a zip, MiB.",
    )
    max_pixels: int = Field(
        default=120_000_000, ge=1,
        description="Most pixels (rows x columns x frames x samples) one image may claim.",
    )

    # How the home was chosen, for messages: "BONEBASE_HOME", "found in DIR", "user-level", or
    # "none found" (then home is where `bonebase init` creates one: ./.bonebase).
    _home_origin: str = PrivateAttr(default="BONEBASE_HOME")

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        if self.home is None:
            self.home, self._home_origin = find_home(Path.cwd())
        self.home = Path(os.path.expanduser(str(self.home))).absolute()
        if self.dask_address is not None:
            address = self.dask_address.strip()
            if not address.startswith(DASK_SCHEMES):
                raise ConfigError(
                    f"BONEBASE_DASK_ADDRESS={self.dask_address!r} is not a Dask scheduler "
                    "address; write it as tcp://HOST:8786 (the address `dask scheduler` prints)"
                )
            if self.task_runner != "dask":
                raise ConfigError(
                    "BONEBASE_DASK_ADDRESS is set but BONEBASE_TASK_RUNNER is "
                    f"{self.task_runner!r}; set BONEBASE_TASK_RUNNER=dask to use the cluster, "
                    "or unset BONEBASE_DASK_ADDRESS"
                )
            self.dask_address = address
        return self

    @property
    def home_origin(self) -> str:
        return self._home_origin

    def describe_home(self) -> str:
        """The home and how it was chosen, e.g. '/srv/x/.bonebase (found in /srv/x)'."""
        origin = {"BONEBASE_HOME": "set by BONEBASE_HOME",
                  "user-level": "the user-level home, none found in this folder or its parents",
                  "none found": "new" if self.home.is_dir() else "not created yet",
                  }.get(self._home_origin, self._home_origin)
        return f"{self.home} ({origin})"

    def for_init(self) -> Settings:
        """The settings `bonebase init` works in: these, except that a user-level home found
        only because none was found here gives way to a new ./.bonebase (as git init does)."""
        if self._home_origin != "user-level":
            return self
        here = self.model_copy(update={"home": Path.cwd().absolute() / HOME_DIR})
        here._home_origin = "none found"
        return here

    def require_home(self) -> Path:
        """The home, which must exist: a command that reads state never creates one."""
        if self.home.is_dir():
            return self.home
        if self._home_origin == "BONEBASE_HOME":
            raise ConfigError(
                f"BONEBASE_HOME {self.home} does not exist: run `bonebase init` to create a "
                "home there, or point BONEBASE_HOME at an existing one"
            )
        raise ConfigError(
            f"no bonebase home here: looked for {HOME_DIR} in {self.home.parent} and its parents "
            f"and for {Path.home() / HOME_DIR}; run `bonebase init` to create {self.home}, "
            "cd into a project that has one, or set BONEBASE_HOME"
        )

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def secret_file(self) -> Path:
        return self.home / SECRET_FILE

    @property
    def object_store_url(self) -> str:
        return self.storage_url or str(self.home / "objects")

    def consortium_secret(self) -> bytes:
        """The pseudonymisation key: BONEBASE_SECRET, else the one `init` wrote into HOME."""
        value = self.secret
        if value is None and self.secret_file.exists():
            value = self.secret_file.read_text().strip()
        if not value:
            raise ConfigError(
                "no consortium secret: set BONEBASE_SECRET or run `bonebase init` "
                f"to generate a development key in {self.secret_file}"
            )
        if self.env == "production" and value.startswith(DEV_SECRET_PREFIX):
            raise ConfigError(
                "BONEBASE_ENV=production refuses the development secret; set BONEBASE_SECRET "
                f"to the consortium key: {secret_key.HOW_TO_MAKE}"
            )
        if self.env == "production" and (problem := secret_key.weakness(value)):
            # The reason names length or predictability, never the key itself.
            raise ConfigError(
                f"the consortium key (BONEBASE_SECRET or {self.secret_file}) {problem}: "
                "production needs a random key; "
                f"{secret_key.HOW_TO_MAKE}"
            )
        return value.encode()

    def ensure_home(self) -> Path:
        """Create HOME (and check it is writable), with a one-line error that names the fix."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            probe = self.home / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"BONEBASE_HOME {self.home} is not writable ({exc.strerror}); "
                "point BONEBASE_HOME at a folder you can write to"
            ) from None
        return self.home

    def ensure_secret(self) -> bool:
        """Write a development secret into HOME unless one exists; True when one was made."""
        if self.secret or self.secret_file.exists():
            return False
        if self.env == "production":
            raise ConfigError(
                "BONEBASE_ENV=production needs BONEBASE_SECRET set; none is generated: "
                + secret_key.HOW_TO_MAKE
            )
        key = DEV_SECRET_PREFIX + secrets.token_hex(32) + "\n"
        return secret_key.write_new(self.secret_file, key)

    def environ(self) -> dict[str, str]:
        """These settings as the environment variables that :func:`get_settings` reads back
        (for a child process, or a flow that builds its settings from the environment)."""
        env = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is not None:
                env[field.validation_alias or f"BONEBASE_{name.upper()}"] = str(value)
        return env


def find_home(start: Path) -> tuple[Path, str]:
    """The home to use when BONEBASE_HOME is unset, and how it was found: the nearest
    ``.bonebase`` folder in ``start`` or its parents (as git finds ``.git``), else the user-level
    ``~/.bonebase`` if it exists, else ``start/.bonebase`` (created only by `bonebase init`)."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / HOME_DIR).is_dir():
            return folder / HOME_DIR, f"found in {folder}"
    user = Path.home() / HOME_DIR
    if user.is_dir():
        return user, "user-level"
    return start / HOME_DIR, "none found"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a bad value is a ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(explain(exc)) from None


def explain(exc: ValidationError) -> str:
    """One line per bad variable: its name, the value given, what is expected."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = "DATABASE_URL" if field == "database_url" else f"BONEBASE_{field.upper()}"
        expected = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}={error.get('input')!r}: {expected}")
    return "bad setting: " + "; ".join(problems) + " (fix or unset the variable)"
