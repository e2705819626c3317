"""Errors that reach a person: each message says what went wrong and what to do.

The CLI prints ``BonebaseError`` messages as one line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class BonebaseError(Exception):
    """An expected failure with a message written for the user."""

    exit_code = 1


class ConfigError(BonebaseError):
    """Settings or the local environment are unusable."""

    exit_code = 2


class DatabaseError(BonebaseError):
    """The database cannot be reached or is not migrated."""

    exit_code = 3


class NotFoundError(BonebaseError):
    """A named thing (site, submission, model) does not exist."""

    exit_code = 4


class InputError(BonebaseError):
    """User input (a code, a file, a row) is invalid; the message names the field."""

    exit_code = 5
