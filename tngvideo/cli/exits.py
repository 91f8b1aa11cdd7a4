"""The command line's exit codes, and the error that carries one."""

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BAD_DATA, EXIT_NO_INPUT, EXIT_CANNOT_WRITE = 0, 1, 2, 3, 4, 5
EXIT_BROKEN_PIPE = 128 + 13  # as a process killed by SIGPIPE: the reader of stdout went away


class CliError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code
