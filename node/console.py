"""Rich consoles for command output: tables are never cut to 80 columns when the output is piped."""
from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 4000  # wide enough for any row; a table still takes only the width its cells need


def stdout_console(stderr: bool = False) -> Console:
    """The terminal's width on a terminal; otherwise (a pipe, a file) wide enough never to truncate or wrap."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPED_WIDTH)
    return console
