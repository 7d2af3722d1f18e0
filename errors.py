"""The one exception type a user sees, and the wrapper that turns it into a one-line message."""

import sys
from collections.abc import Callable


class ClothVisionError(Exception):
    """A problem the user can fix: the message names the file, the problem and the fix, on one line."""


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's main(); a ClothVisionError becomes 'error: ...' on stderr and exit code 2."""
    try:
        main(argv)
    except ClothVisionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
