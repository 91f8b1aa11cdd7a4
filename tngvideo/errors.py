"""Errors that name bad input, free of heavy imports so the command line can catch them without
loading torch or FFmpeg."""


class DecodeError(ValueError):
    """A stream that this codec cannot decode (corrupt, or made by other weights)."""


class MediaError(ValueError):
    """The input is not readable media."""


class UsageError(ValueError):
    """Arguments that are out of range or cannot work together (the command line's exit code 2)."""


class InputNotFoundError(FileNotFoundError):
    """The input does not exist, is not a regular file, or cannot be read (exit code 4)."""


class OutputError(PermissionError):
    """The output cannot be written: it exists (and overwriting was not asked for), is the input,
    or its folder is missing or read-only (exit code 5). Found before any work is done."""


class BadInputError(ValueError):
    """The input's data is unusable; the message names the file (exit code 3)."""
