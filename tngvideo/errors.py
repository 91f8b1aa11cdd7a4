"""Errors that name bad input, free of heavy imports so the command line can catch them without
loading torch or FFmpeg."""


class DecodeError(ValueError):
    """A stream that this codec cannot decode (corrupt, or made by other weights)."""


class MediaError(ValueError):
    """The input is not readable media."""
