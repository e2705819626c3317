"""Errors that reach a person: each message says what went wrong and what to do.

The CLI prints ``BonebaseError`` messages as one line and exits non-zero; anything else is a bug
and keeps its traceback. Records (a submission's JSON receipt, the audit log) keep an error's
English (``english``) and a stable ``code``, whatever language the message was raised in.
"""


class BonebaseError(Exception):
    """An expected failure with a message written for the user."""

    exit_code = 1
    #: what records name the failure by (a class's, or one given where it is raised)
    code = "error"

    def __init__(self, *args: object, code: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code

    @property
    def english(self) -> str:
        """The message in English: a message of ``bonebase.i18n._`` keeps its English, any
        other is written in English."""
        from bonebase.i18n import english

        return str(english(self.args[0])) if self.args else ""


class ConfigError(BonebaseError):
    """Settings or the local environment are unusable."""

    exit_code = 2
    code = "config_error"


class DatabaseError(BonebaseError):
    """The database cannot be reached or is not migrated."""

    exit_code = 3
    code = "database_error"


class NotFoundError(BonebaseError):
    """A named thing (site, submission, model) does not exist."""

    exit_code = 4
    code = "not_found"


class InputError(BonebaseError):
    """User input (a code, a file, a row) is invalid; the message names the field."""

    exit_code = 5
    code = "input_error"
