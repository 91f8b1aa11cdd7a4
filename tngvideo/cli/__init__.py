"""Command line: `tngvideo encode | batch | decode | segment | analyze | info | demo | image encode |
image decode`, thin adapters over the public API (tngvideo.api).

Exit codes: 0 success, 1 internal error, 2 usage error, 3 bad input data,
4 input not found, 5 output cannot be written.
"""

from tngvideo.cli.app import main
from tngvideo.cli.exits import (EXIT_BAD_DATA, EXIT_CANNOT_WRITE, EXIT_INTERNAL, EXIT_NO_INPUT, EXIT_OK,
                                EXIT_USAGE)
from tngvideo.cli.parser import build_parser

__all__ = ["EXIT_BAD_DATA", "EXIT_CANNOT_WRITE", "EXIT_INTERNAL", "EXIT_NO_INPUT", "EXIT_OK", "EXIT_USAGE",
           "build_parser", "main"]
