"""The command line's entry point: parse, run the command (with `-` as stdin/stdout), and turn
every error into a one-line message and an exit code (tngvideo.cli.exits)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tngvideo.api.paths import shown
from tngvideo.cli.exits import (EXIT_BAD_DATA, EXIT_BROKEN_PIPE, EXIT_CANNOT_WRITE, EXIT_INTERNAL, EXIT_NO_INPUT,
                                EXIT_OK, EXIT_USAGE, CliError)
from tngvideo.cli.parser import build_parser

STDOUT_SUFFIX = {"encode": ".tngv", "image encode": ".tng", "image decode": ".png"}
STREAMED = {"decode"}  # commands that write `-o -` themselves, as they go
DEBUG_VAR = "TNGVIDEO_DEBUG"  # set to 1: an unexpected error shows its traceback instead of one line


def _run_with_pipes(args) -> int:
    """`-` as input spools stdin to a temporary file; `-` as output writes a temporary file and
    copies it to stdout once the command has succeeded (so a failure never emits half a file)."""
    command = args.command + (f" {args.image_command}" if getattr(args, "image_command", None) else "")
    pipe_in = getattr(args, "input", None) == "-"
    pipe_out = getattr(args, "output", None) == "-"
    if not (pipe_in or pipe_out):
        return args.func(args)
    streamed = pipe_out and command in STREAMED
    if pipe_out and command not in STDOUT_SUFFIX and not streamed:
        raise CliError(f"'{command}' cannot write to stdout", EXIT_USAGE)
    if pipe_in and not pipe_out and not getattr(args, "output", None) and (command in STDOUT_SUFFIX or command in STREAMED):
        raise CliError("reading from stdin needs -o OUTPUT", EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="tngvideo-") as tmp:
        if pipe_in:
            args.input = str(Path(tmp) / "stdin")
            with open(args.input, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
        if pipe_out and not streamed:
            args.output = str(Path(tmp) / f"stdout{STDOUT_SUFFIX[command]}")
            args.overwrite = True
        code = args.func(args)
        if pipe_out and not streamed and code in (EXIT_OK, EXIT_BAD_DATA) and Path(args.output).is_file():
            with open(args.output, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return code


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `tngvideo info --json x.tngv | head`: stop quietly, as cat does
        _drop_stdout()
        return EXIT_BROKEN_PIPE


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush finds no closed pipe either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (a test's capture)
        pass


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from tngvideo import keep_freed_memory

    keep_freed_memory()
    from tngvideo.bitstream import BitstreamError
    from tngvideo.errors import BadInputError, DecodeError, InputNotFoundError, MediaError, OutputError, UsageError
    from tngvideo.image.registry import UnknownModelError
    from tngvideo.limits import MemoryLimitError
    from tngvideo.streaming.playlist import PlaylistError

    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        with _signals_interrupt():
            return _run_with_pipes(args)
    except CliError as exc:
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return exc.code
    except (UsageError, BadInputError, InputNotFoundError, OutputError) as exc:  # the API's checks
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return (EXIT_USAGE if isinstance(exc, UsageError) else EXIT_BAD_DATA if isinstance(exc, BadInputError)
                else EXIT_NO_INPUT if isinstance(exc, InputNotFoundError) else EXIT_CANNOT_WRITE)
    except UnknownModelError as exc:  # a --model the user named (usage), or a name read from a file (bad data)
        named = getattr(args, "model", None)
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if named is not None else EXIT_BAD_DATA
    except (BitstreamError, DecodeError, MediaError, PlaylistError, MemoryLimitError) as exc:  # bad input data
        print(f"tngvideo: error: {shown(getattr(args, 'input', '') or 'input')}: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    except ValueError as exc:
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        raise
    except OSError as exc:
        name = exc.filename or getattr(args, "output", None) or getattr(args, "input", None) or "output"
        print(f"tngvideo: error: {shown(name)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
    except Terminated as exc:
        print(f"tngvideo: stopped by signal {exc.signum}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tngvideo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or a failure in a library below: one line, never a traceback
        if os.environ.get(DEBUG_VAR):
            raise
        if isinstance(exc, MemoryError):
            print("tngvideo: error: out of memory (try a smaller input, fewer --workers or --threads)",
                  file=sys.stderr)
        else:
            print(f"tngvideo: internal error: {type(exc).__name__}: {exc} "
                  f"(set {DEBUG_VAR}=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that partial outputs are cleaned up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_interrupt():
    """While a command runs, SIGTERM and SIGHUP stop it the way Ctrl-C does (in the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated(signum)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
