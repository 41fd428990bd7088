"""The command line's exit codes (DESIGN §4.1) and the error that carries one; imports nothing."""
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CANCELLED = 0, 1, 2, 3, 130


class CliError(Exception):
    """A failure the command line reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code
