"""Rich consoles for command output: tables are never cut to 80 columns when the output is piped."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console

PIPED_WIDTH = 4000  # wide enough for any row; a table still takes only the width its cells need


def stdout_console(stderr: bool = False) -> Console:
    """The terminal's width on a terminal; otherwise (a pipe, a file) wide enough never to truncate or wrap."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPED_WIDTH)
    return console


@contextlib.contextmanager
def step_progress(console: Console, title: str) -> Iterator[Callable[[str], None]]:
    """A rich progress display for a multi-step command (`chain up`, `network up`): a spinner on the current step
    with its elapsed time, and each finished step left on screen with a tick.

    On a terminal only: piped (a log file, a test), nothing is printed, so a failure stays one line.
    Yields ``progress(step)``, which finishes the current step and starts the next.
    """
    if not console.is_terminal:
        yield lambda _step: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        current: list = []

        def progress(step: str) -> None:
            if current:
                bar.update(current[-1], completed=1)
            current.append(bar.add_task(f"{title}: {step}", total=1))

        try:
            yield progress
        finally:
            if current:
                bar.update(current[-1], completed=1)
