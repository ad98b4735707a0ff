"""CSV sources: points from lon/lat columns, or any geometry from a WKT column.

Every column is read as text and converted during validation, so one bad value becomes one
rejected row naming its line and field, instead of a parser error that loses the file. Arrow's
CSV reader does the parsing; only when a problem must be located in a file whose quoted fields
span lines do we scan it again to turn record numbers into line numbers.
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
    SkippedRecord,
    detect_column,
)

_BLOCK = 8 << 20
_SCAN = 1 << 22

#: Byte-order marks, longest first (a UTF-32 LE mark begins like a UTF-16 LE one). A mark says
#: what the bytes are more surely than any declaration, so it wins, as it does in browsers.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16-be", "UTF-16"),
)


@dataclass(frozen=True)
class TextEncoding:
    """How a CSV's bytes become text: for Python's reader, for Arrow's, and what to tell."""

    python: str
    arrow: str
    #: Quotes, commas and line ends are single ASCII bytes (not so in UTF-16 or UTF-32).
    ascii_compatible: bool
    #: ``\n`` and ``\r`` as bytes, to tell whether the file ends with a line break.
    line_breaks: tuple[bytes, bytes] = (b"\n", b"\r")
    note: str | None = None


def _breaks(codec: str) -> tuple[bytes, bytes]:
    return ("\n".encode(codec), "\r".encode(codec))


def _codec(name: str, path: Path) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError as exc:
        raise SourceError(
            f"unknown text encoding '{name}': use a name such as utf-8, cp1252 or latin-1",
            path=path,
        ) from exc


def text_encoding(opts: ReadOptions) -> TextEncoding:
    """The encoding to read a CSV with: its byte-order mark's, else the declared one, checked.

    A declaration that would mangle names silently is refused: UTF-8 bytes declared as a
    single-byte encoding (``Berbérati`` would read ``BerbÃ©rati``), or Windows text declared
    as latin-1 (its curly quotes and dashes are control characters there).
    """
    stat = opts.path.stat()
    return _text_encoding(opts.path, opts.encoding, stat.st_mtime_ns, stat.st_size)


@cache
def _text_encoding(path: Path, declared: str, mtime_ns: int, size: int) -> TextEncoding:
    del mtime_ns, size  # part of the cache key only
    codec = _codec(declared, path)
    with path.open("rb") as fh:
        head = fh.read(4)
    for bom, python, plain, label in _BOMS:
        if head.startswith(bom):
            note = (
                None
                if codec.removesuffix("-sig")[:6] == python.removesuffix("-sig")[:6]
                or codec == "utf-8"
                else f"{path.name}: starts with a {label} byte-order mark, so it is read as "
                f"{label}, not as the declared {declared}"
            )
            arrow = "utf8" if python == "utf-8-sig" else python
            return TextEncoding(python, arrow, python == "utf-8-sig", _breaks(plain), note)
    if codec in ("utf-8", "utf-8-sig"):
        # Arrow reads UTF-8 natively only when told "utf8"; any other spelling goes through a
        # Python codec and parses at a fraction of the speed.
        return TextEncoding("utf-8", "utf8", True)
    ascii_compatible = 'a,"\n'.encode(codec, errors="replace") == b'a,"\n'
    if ascii_compatible and not codec.startswith("utf"):
        _refuse_misdeclared(path, declared, codec)
    breaks = _breaks(codec + "-le" if codec in ("utf-16", "utf-32") else codec)
    return TextEncoding(codec, codec, ascii_compatible, breaks)


def _refuse_misdeclared(path: Path, declared: str, codec: str) -> None:
    """One pass over the bytes, stopping as soon as the declaration is plausible."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = True
    first_high: int | None = None
    first_c1: int | None = None
    check_c1 = codec == "latin-1" or codec == "iso8859-1"
    offset = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_SCAN), b""):
            if is_utf8:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    is_utf8 = False
            if first_high is None and (m := re.search(rb"[\x80-\xff]", chunk)):
                first_high = offset + m.start()
            if check_c1 and first_c1 is None and (m := re.search(rb"[\x80-\x9f]", chunk)):
                first_c1 = offset + m.start()
            offset += len(chunk)
            if not is_utf8 and (first_c1 is not None or not check_c1):
                break
    if is_utf8:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            is_utf8 = False
    if is_utf8 and first_high is not None:
        line, text, at = _line_at(path, first_high)
        raise SourceError(
            f"line {line}, byte offset {first_high}: the file is UTF-8 text, but its encoding is "
            f"declared as {declared}, which would read {_excerpt(text, 'utf-8', at)!r} as "
            f"{_excerpt(text, codec, at)!r}; remove the encoding key (UTF-8 is the default)",
            path=path,
        )
    if first_c1 is not None:
        line, text, at = _line_at(path, first_c1)
        byte = _byte_at(path, first_c1)
        raise SourceError(
            f"line {line}, byte offset {first_c1}: byte 0x{byte:02X} is a control character in "
            f"{declared}, so the file is probably Windows text (as cp1252 the line reads "
            f'{_excerpt(text, "cp1252", at)!r}); set encoding = "cp1252" in its catalog entry',
            path=path,
        )


def _byte_at(path: Path, offset: int) -> int:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(1)[0]


def _line_at(path: Path, offset: int) -> tuple[int, bytes, int]:
    """The 1-based line holding byte ``offset``, that line's bytes (at most 4 KiB of it) and
    where in them the byte is."""
    newlines = 0
    done = 0
    with path.open("rb") as fh:
        while done < offset:
            chunk = fh.read(min(_SCAN, offset - done))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            done += len(chunk)
        fh.seek(max(0, offset - 2048))
        window = fh.read(4096)
    at = offset - max(0, offset - 2048)
    start = window.rfind(b"\n", 0, at) + 1
    end = window.find(b"\n", at)
    line = window[start : end if end >= 0 else len(window)].rstrip(b"\r")
    return newlines + 1, line, at - start


def _excerpt(line: bytes, codec: str, at: int, limit: int = 60) -> str:
    """A line as ``codec`` reads it, cut around byte ``at`` to fit in a one-line message."""
    start = max(0, at - limit // 2)
    text = line[start : start + limit].decode(codec, errors="replace")
    return ("…" if start else "") + text + ("…" if start + limit < len(line) else "")


def undecodable(opts: ReadOptions, enc: TextEncoding) -> SourceError:
    """Where the bytes stop being text in the declared encoding, and what to declare instead."""
    decoder = codecs.getincrementaldecoder(enc.python)()
    fed = 0
    with opts.path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_SCAN), b""):
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                offset = fed - len(pending) + exc.start
                break
            fed += len(chunk)
        else:
            offset = -1
    if offset < 0:
        return SourceError(f"is not valid {opts.encoding} text", path=opts.path)
    line, text, at = _line_at(opts.path, offset)
    byte = _byte_at(opts.path, offset)
    try:
        text.decode("cp1252")
        suggest = "cp1252"
    except UnicodeDecodeError:
        suggest = "latin-1"
    return SourceError(
        f"line {line}, byte offset {offset}: byte 0x{byte:02X} is not valid {opts.encoding} "
        f"text; if the file is Windows or Latin-1 text (as {suggest} the line reads "
        f'{_excerpt(text, suggest, at)!r}), set encoding = "{suggest}" in its catalog entry '
        f"(riskmap validate: --encoding {suggest})",
        path=opts.path,
    )


def read_header(opts: ReadOptions) -> list[str]:
    """Column names from the first line, with a clear error for empty or undecodable files."""
    enc = text_encoding(opts)
    try:
        with opts.path.open(encoding=enc.python, newline="") as fh:
            header = next(csv.reader(fh, delimiter=opts.delimiter), None)
    except FileNotFoundError as exc:
        raise SourceError("file not found", path=opts.path) from exc
    except UnicodeDecodeError as exc:
        raise undecodable(opts, enc) from exc
    except csv.Error as exc:
        raise SourceError(f"line 1 cannot be read as CSV: {exc}", path=opts.path) from exc
    if not header or not any(h.strip() for h in header):
        raise SourceError("file is empty: expected a header line with column names", path=opts.path)
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceError(f"line 1 repeats column name(s) {', '.join(dupes)}", path=opts.path)
    return names


@cache
def _record_lines(
    path: Path, encoding: str, delimiter: str, mtime_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start line and column count of every data record (blank lines are not records)."""
    del mtime_ns  # part of the cache key only
    starts: list[int] = []
    widths: list[int] = []
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding=encoding, newline="", errors="replace") as fh:
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
        enc = text_encoding(opts)
        geo = self.geometry_columns(opts, header)
        wanted = list(dict.fromkeys([*(columns if columns is not None else header), *geo]))
        table, malformed, ending = _read_text_columns(opts, enc, header, wanted, progress)
        records = np.arange(1, table.num_rows + 1, dtype=np.int64)
        key = (opts.path, enc.python, opts.delimiter, opts.path.stat().st_mtime_ns)
        skipped: list[SkippedRecord] = []

        if malformed or ending.open_quote:
            starts, widths = _record_lines(*key)
            _refuse_truncated(opts, header, starts, widths, ending)
            # Arrow skipped rows with the wrong number of fields; recover which records it kept
            # so every remaining row still points at its own line, and say where the others are.
            good = np.flatnonzero(widths == len(header)) + 1
            bad = np.flatnonzero(widths != len(header))
            if len(good) == table.num_rows and len(bad) == len(malformed):
                records = good
                skipped = [
                    SkippedRecord(int(i) + 1, int(starts[i]), text, reason)
                    for i, (text, reason) in zip(bad, malformed, strict=True)
                ]
            else:  # the two parsers disagree: keep Arrow's word, without a line number
                skipped = [SkippedRecord(-1, -1, text, reason) for text, reason in malformed]
        n_rows = table.num_rows

        def locate(recs: np.ndarray) -> np.ndarray:
            # Only asked when there are problems to report: a clean file is never re-read.
            if not malformed and enc.ascii_compatible:
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
            skipped=skipped,
        )
        if geo and self.geometry_kind == "lonlat":
            raw.lonlat = (geo[0], geo[1])
        else:
            raw.wkt = geo[0]
        if enc.note:
            raw.notes.append(enc.note)
        return raw


def _refuse_truncated(
    opts: ReadOptions,
    header: list[str],
    starts: np.ndarray,
    widths: np.ndarray,
    ending: _Ending,
) -> None:
    """A file cut short (mid-row, mid-quoted-field) is refused: rows past the cut are lost.

    A record with too few fields in the middle of a file is one bad row; the same at the very
    end, with no line break after it, or a quote still open at the end of the file, means the
    copy stopped part-way.
    """
    if not len(starts):
        return
    last = int(starts[-1])
    if ending.open_quote:
        raise SourceError(
            f'line {last}: the file ends inside a quoted field (a " opened in the record that '
            f"starts on this line is never closed): it looks truncated; copy it again from the "
            "publisher",
            path=opts.path,
        )
    if widths[-1] < len(header) and not ending.line_break:
        raise SourceError(
            f"line {last}: the file ends in the middle of a record ({widths[-1]} of "
            f"{len(header)} fields, and no line break after it): it looks truncated; copy it "
            "again from the publisher",
            path=opts.path,
        )


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


@dataclass(frozen=True)
class _Ending:
    """How the bytes of a CSV end: inside a quoted field, and with a line break or not."""

    open_quote: bool
    line_break: bool


class _Counter:
    """A file object that remembers how far Arrow has read (for the progress bar), how many
    quote characters it saw and the last bytes (to tell a file cut short), in the same pass."""

    def __init__(self, path: Path, count_quotes: bool) -> None:
        self._fh = path.open("rb")
        self.done = 0
        self.quotes = 0
        self.tail = b""
        self.closed = False
        self._count_quotes = count_quotes

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.done += len(data)
        if data:
            if self._count_quotes:
                self.quotes += data.count(b'"')
            self.tail = (self.tail + data)[-4:]
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._fh.close()
        self.closed = True

    def ending(self, enc: TextEncoding) -> _Ending:
        """In well-formed CSV every quoted field holds an even number of quote characters."""
        return _Ending(
            open_quote=self._count_quotes and self.quotes % 2 == 1,
            line_break=any(self.tail.endswith(b) for b in enc.line_breaks),
        )


def _read_text_columns(
    opts: ReadOptions,
    enc: TextEncoding,
    header: list[str],
    wanted: list[str],
    progress: ProgressFn | None,
) -> tuple[pa.Table, list[tuple[str, str]], _Ending]:
    """The wanted columns as text; rows Arrow skipped (their text, why); how the file ends."""
    missing = [c for c in wanted if c not in header]
    if missing:
        raise SourceError(
            f"column(s) {', '.join(missing)} named in the mapping are not in the header; "
            f"columns are {', '.join(header)}",
            path=opts.path,
            row=1,
        )
    malformed: list[tuple[str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append(
            (row.text, f"expected {row.expected_columns} fields, got {row.actual_columns}")
        )
        return "skip"

    read_options = pacsv.ReadOptions(
        block_size=_BLOCK, encoding=enc.arrow, column_names=header, skip_rows=1
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
    counter = _Counter(opts.path, count_quotes=enc.ascii_compatible)
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
    except UnicodeDecodeError as exc:  # raised by the Python codec Arrow decodes through
        raise undecodable(opts, enc) from exc
    except pa.ArrowInvalid as exc:
        msg = str(exc).splitlines()[0]
        if "UTF8" in msg or "utf8" in msg or "Unicode" in msg:
            raise undecodable(opts, enc) from exc
        if "parse error" in msg.lower():
            msg = f"cannot be parsed as CSV, the file may be truncated or damaged ({msg})"
        raise SourceError(msg, path=opts.path) from exc
    finally:
        stop.set()
        if poller:
            poller.join()
        counter.close()
    if progress:
        progress(total, total)
    table = table.select(wanted)
    return table, malformed, counter.ending(enc)
