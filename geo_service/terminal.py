"""Tables for the terminal: a table when the terminal is wide enough for every value whole,
else one block of labelled values per row, so nothing is cut short in a narrow window."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def show_table(
    console: Console,
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    wrap: Iterable[str] = (),
    right: Iterable[str] = (),
) -> None:
    """Print ``rows`` under ``columns``. Only the columns named in ``wrap`` (long lists, names
    of several words) may break across lines; ``right`` are right-aligned. Values are shown
    as their text (markup is not read)."""
    cells = [[str(v) for v in row] for row in rows]
    wrap = set(wrap)
    if _narrowest(columns, cells, wrap) > console.width:
        _blocks(console, title, columns, cells)
        return
    right = set(right)
    table = Table(title=title)
    for col in columns:
        table.add_column(col, no_wrap=col not in wrap, justify="right" if col in right else "left")
    for row in cells:
        table.add_row(*(escape(v) for v in row))
    console.print(table)


def _blocks(
    console: Console, title: str | None, columns: Sequence[str], cells: list[list[str]]
) -> None:
    """One block a row: its first value in bold, then the others labelled."""
    if title:
        console.print(f"[bold]{escape(title)}[/]")
    for i, row in enumerate(cells):
        if i:
            console.print()
        console.print(f"[bold]{escape(row[0])}[/]", highlight=False)
        for col, value in zip(columns[1:], row[1:], strict=True):
            console.print(f"  {escape(col)}: {escape(value)}", highlight=False)


def _narrowest(columns: Sequence[str], cells: list[list[str]], wrap: set[str]) -> int:
    """Cells the table needs with every value whole: a column that may wrap needs its longest
    word, any other its longest value; each column has a space either side and a rule."""
    need = 1
    for i, col in enumerate(columns):
        values = [col] + [row[i] for row in cells]
        words = [w for v in values for w in v.split()] if col in wrap else values
        need += max(map(cell_len, words), default=0) + 3
    return need
