"""The one exception type a user sees, and the wrapper that turns it into a one-line message."""

import sys
from collections.abc import Callable


class ClothVisionError(Exception):
    """A problem the user can fix: the message names the file, the problem and the fix, on one line."""


def error_reason(error: BaseException) -> str:
    """Type and first line of a library's exception, so the message built around it stays one line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's main(); a ClothVisionError (or an OSError) becomes 'error: ...' on stderr and exit code 2,
    a Ctrl-C 'error: interrupted' (with what the command saved, when it says) and exit code 130."""
    try:
        main(argv)
    except ClothVisionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # What the commands' own checks did not foresee (a disk filling up, a file vanishing) still ends
        # in one line; the OSError's text names the path.
        print(f"error: {error_reason(error)}: check that path, its permissions and the free disk space",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        # A command that knows what it saved says so in the interrupt's message.
        print("error: interrupted" + (f": {interrupt}" if str(interrupt) else ""), file=sys.stderr)
        return 130
    return 0
