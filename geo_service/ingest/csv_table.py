"""CSV sources: points from lon/lat columns, or any geometry from a WKT column.

Every column is read as text and converted during validation, so one bad value becomes one
rejected row naming its line and field, instead of a parser error that loses the file. Arrow's
CSV reader does the parsing; only when a problem must be located in a file whose quoted fields
span lines do we scan it again to turn record numbers into line numbers.
"""

from __future__ import annotations

import csv
import sys
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from geo_service.errors import SourceError
from geo_service.ingest.base import (
    LAT_NAMES,
    LON_NAMES,
    WKT_NAMES,
    ProgressFn,
    RawTable,
    ReadOptions,
    detect_column,
)

_BLOCK = 8 << 20


def _python_encoding(encoding: str) -> str:
    # A UTF-8 byte-order mark is not part of the first column's name.
    return "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


def _arrow_encoding(encoding: str) -> str:
    # Arrow reads UTF-8 natively only when told "utf8"; any other spelling goes through a
    # Python codec and parses at a fraction of the speed.
    return "utf8" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


def read_header(opts: ReadOptions) -> list[str]:
    """Column names from the first line, with a clear error for empty or undecodable files."""
    try:
        with opts.path.open(encoding=_python_encoding(opts.encoding), newline="") as fh:
            header = next(csv.reader(fh, delimiter=opts.delimiter), None)
    except FileNotFoundError as exc:
        raise SourceError("file not found", path=opts.path) from exc
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"line 1 is not valid {opts.encoding} text ({exc.reason}); set encoding "
            '(e.g. encoding = "latin-1") in the source\'s catalog entry',
            path=opts.path,
        ) from exc
    if not header or not any(h.strip() for h in header):
        raise SourceError("file is empty: expected a header line with column names", path=opts.path)
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceError(f"line 1 repeats column name(s) {', '.join(dupes)}", path=opts.path)
    return names


@cache
def _record_lines(
    path: Path, encoding: str, delimiter: str, mtime: float
) -> tuple[np.ndarray, np.ndarray]:
    """Start line and column count of every data record (blank lines are not records)."""
    del mtime  # part of the cache key only
    starts: list[int] = []
    widths: list[int] = []
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding=_python_encoding(encoding), newline="", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader, None)
        prev_end = reader.line_num
        for row in reader:
            if row:
                starts.append(prev_end + 1)
                widths.append(len(row))
            prev_end = reader.line_num
    return np.asarray(starts, dtype=np.int64), np.asarray(widths, dtype=np.int64)


def _newline_count(path: Path) -> tuple[int, bool]:
    n = 0
    last = b""
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n, last == b"\n"


class CsvAdapter:
    """CSV with coordinates in lon/lat columns (named in the mapping, or detected)."""

    name = "csv"
    suffixes = (".csv", ".tsv", ".txt")
    geometry_kind = "lonlat"

    def columns(self, opts: ReadOptions) -> list[str]:
        """Column names from the header line."""
        return read_header(opts)

    def geometry_columns(self, opts: ReadOptions, header: Sequence[str]) -> list[str]:
        """The coordinate columns, named or detected; an error naming the file if neither."""
        lon = opts.lon or detect_column(header, LON_NAMES)
        lat = opts.lat or detect_column(header, LAT_NAMES)
        missing = [
            (role, given)
            for role, given, found in (("lon", opts.lon, lon), ("lat", opts.lat, lat))
            if found is None or found not in header
        ]
        if missing:
            role, given = missing[0]
            what = (
                f"column '{given}' named as {role} is not in the header"
                if given
                else (
                    f"no {role} column found (looked for {', '.join(LON_NAMES if role == 'lon' else LAT_NAMES)});"
                    f' name it with {role} = "..." in the mapping'
                )
            )
            raise SourceError(f"{what}; columns are {', '.join(header)}", path=opts.path, row=1)
        return [lon, lat]

    def read(
        self, opts: ReadOptions, columns: Sequence[str] | None, progress: ProgressFn | None = None
    ) -> RawTable:
        """Read the named columns as text, skipping (and reporting) malformed rows."""
        header = read_header(opts)
        geo = self.geometry_columns(opts, header)
        wanted = list(dict.fromkeys([*(columns if columns is not None else header), *geo]))
        table, malformed = _read_text_columns(opts, header, wanted, progress)
        records = np.arange(1, table.num_rows + 1, dtype=np.int64)
        stat = opts.path.stat()
        key = (opts.path, opts.encoding, opts.delimiter, stat.st_mtime)

        if malformed:
            # Arrow skipped rows with the wrong number of fields; recover which records it kept
            # so every remaining row still points at its own line.
            starts, widths = _record_lines(*key)
            good = np.flatnonzero(widths == len(header)) + 1
            if len(good) == table.num_rows:
                records = good
        n_rows = table.num_rows

        def locate(recs: np.ndarray) -> np.ndarray:
            # Only asked when there are problems to report: a clean file is never re-read.
            if not malformed:
                lines_total, trailing = _newline_count(opts.path)
                if lines_total + (0 if trailing else 1) == n_rows + 1:
                    return recs + 1
            starts, _ = _record_lines(*key)
            return starts[np.clip(recs - 1, 0, len(starts) - 1)]

        raw = RawTable(
            path=opts.path,
            data=table.to_pandas(),
            records=records,
            crs=None,
            record_word="line",
            locate=locate,
        )
        if geo and self.geometry_kind == "lonlat":
            raw.lonlat = (geo[0], geo[1])
        else:
            raw.wkt = geo[0]
        raw.notes.extend(malformed)
        return raw


class CsvWktAdapter(CsvAdapter):
    """CSV with geometries as WKT text in one column (named in the mapping, or detected)."""

    name = "csv_wkt"
    suffixes = ()
    geometry_kind = "wkt"

    def geometry_columns(self, opts: ReadOptions, header: Sequence[str]) -> list[str]:
        """The WKT column, named or detected."""
        col = opts.wkt or detect_column(header, WKT_NAMES)
        if col is None or col not in header:
            what = (
                f"WKT column '{opts.wkt}' is not in the header"
                if opts.wkt
                else (
                    f'no WKT column found (looked for {", ".join(WKT_NAMES)}); name it with wkt = "..."'
                )
            )
            raise SourceError(f"{what}; columns are {', '.join(header)}", path=opts.path, row=1)
        return [col]


class _Counter:
    """A file object that remembers how far Arrow has read, for the progress bar."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("rb")
        self.done = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.done += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._fh.close()
        self.closed = True


def _read_text_columns(
    opts: ReadOptions, header: list[str], wanted: list[str], progress: ProgressFn | None
) -> tuple[pa.Table, list[str]]:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise SourceError(
            f"column(s) {', '.join(missing)} named in the mapping are not in the header; "
            f"columns are {', '.join(header)}",
            path=opts.path,
            row=1,
        )
    malformed: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        where = f"line {row.number}" if row.number is not None else "a row"
        text = row.text if len(row.text) <= 80 else row.text[:77] + "..."
        malformed.append(
            f"{opts.path.name}, {where}: expected {row.expected_columns} fields, got "
            f"{row.actual_columns} ({text!r}); row skipped"
        )
        return "skip"

    read_options = pacsv.ReadOptions(
        block_size=_BLOCK, encoding=_arrow_encoding(opts.encoding), column_names=header, skip_rows=1
    )
    parse_options = pacsv.ParseOptions(
        delimiter=opts.delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
    )
    convert_options = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types={c: pa.large_string() for c in wanted},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    total = opts.path.stat().st_size
    counter = _Counter(opts.path)
    # Arrow parses blocks on several threads and releases the GIL; a small thread reports how
    # far it has read, so the progress bar moves without slowing the parse.
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(0.2):
            progress(min(counter.done, total), total)  # type: ignore[misc]

    poller = threading.Thread(target=report, daemon=True) if progress else None
    if poller:
        poller.start()
    try:
        table = pacsv.read_csv(
            counter,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "UTF8" in msg or "utf8" in msg or "Unicode" in msg:
            msg = (
                f"text is not valid {opts.encoding} ({msg.splitlines()[0]}); set encoding "
                '(e.g. encoding = "latin-1") in the source\'s catalog entry'
            )
        elif "parse error" in msg.lower():
            msg = f"cannot be parsed as CSV, the file may be truncated ({msg.splitlines()[0]})"
        raise SourceError(msg, path=opts.path) from exc
    finally:
        stop.set()
        if poller:
            poller.join()
        counter.close()
    if progress:
        progress(total, total)
    table = table.select(wanted)
    return table, malformed
