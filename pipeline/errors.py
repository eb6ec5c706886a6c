"""User-facing errors. Every message says what went wrong, where, and how to fix it."""

from __future__ import annotations


class ReadthroughError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""

    exit_code = 2

    def __init__(self, *args, detail: str | None = None):
        super().__init__(*args)
        self.detail = detail  # the underlying error, for -v (never part of the message)


class ScriptError(ReadthroughError):
    """A screenplay file cannot be read or is not Fountain."""


class SettingsError(ReadthroughError):
    """A settings file or flag is invalid."""


class CastFileError(ReadthroughError):
    """A cast file names an unknown character or key, or a bad value."""


class ModelError(ReadthroughError):
    """A model cannot be found, loaded, or does not fit in memory."""


class EngineError(ReadthroughError):
    """An engine is unknown or unavailable on this machine."""


class VoiceLockError(ReadthroughError):
    """A voice lock or .vox file is missing, corrupt or belongs to another model."""


class RenderError(ReadthroughError):
    """Rendering one or more lines failed."""

    exit_code = 1


class RegressionError(ReadthroughError):
    """Golden fingerprints are missing or unreadable."""


def did_you_mean(name: str, choices) -> str:
    """' Available: a, b, c.' — appended to errors about unknown names."""
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{hint} Available: {', '.join(choices) or '(none)'}."
