"""Publisher columns → canonical columns, still as published (conversion is validation's job).

A rule takes one column, the first non-empty of several, a template over columns or a
constant; then translates publisher codes (``map``) and blanks values meaning "unknown"
(``null_if``). Everything is a whole-column operation.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo_service.catalog import FieldRule, Mapping
from geo_service.errors import SourceError
from geo_service.schemas import KindSchema

_TEMPLATE_PART = re.compile(r"{([^{}]+)}")


def as_text(values: pd.Series) -> pd.Series:
    """Values as trimmed text, with empty text as missing; whole floats lose their ``.0``."""
    if pd.api.types.is_bool_dtype(values.dtype):
        text = values.astype("str")
    elif pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(arr) & (np.mod(arr, 1) == 0) & (np.abs(arr) < 2**53)
        text = pd.Series(
            np.where(
                whole, np.char.mod("%d", np.where(whole, arr, 0)), values.astype("str").to_numpy()
            ),
            index=values.index,
            dtype="str",
        )
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        text = values.dt.strftime("%Y-%m-%dT%H:%M:%S").astype("str")
    elif values.dtype == "str":
        # The common case (CSV text): keep the column as it is unless a value needs trimming,
        # so a clean million-row column costs one scan and no copy.
        arr = arrow_of(values)
        edges = pc.or_(
            pc.utf8_is_space(pc.utf8_slice_codeunits(arr, 0, 1)),
            pc.utf8_is_space(pc.utf8_slice_codeunits(arr, -1, 2**31 - 1)),
        )
        if not pc.any(pc.or_(edges, pc.equal(pc.utf8_length(arr), 0))).as_py():
            return values
        text = values
    else:
        text = values.astype("str")
    text = text.where(values.notna().to_numpy(), None).str.strip()
    return text.where(text != "", None)


def arrow_of(values: pd.Series) -> pa.ChunkedArray:
    """The Arrow data behind a column (no copy for Arrow-backed text)."""
    arr = pa.array(values, from_pandas=True)
    return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])


def const_text(value: str, n: int) -> pd.Series:
    """A text column holding one value, made without a million-item Python list."""
    return pa.repeat(pa.scalar(value, pa.large_string()), n).to_pandas()


def needed_columns(
    mapping: Mapping, schema: KindSchema, header: list[str], where: dict
) -> list[str]:
    """Every publisher column a mapping reads (so adapters can skip the rest)."""
    cols: list[str] = []
    for name in [*schema.field_names, "source_id", "sensitivity"]:
        rule = mapping.rules.get(name)
        if rule is not None:
            cols.extend(rule.columns)
        elif name in header:
            cols.append(name)
    cols.extend(mapping.keep)
    cols.extend(where)
    return list(dict.fromkeys(cols))


def check_columns(
    mapping: Mapping, schema: KindSchema, header: list[str], where: dict, path: object
) -> None:
    """Every column the mapping names, and every required field, must be in the file."""
    named = [c for rule in mapping.rules.values() for c in rule.columns]
    named += list(mapping.keep) + list(where)
    missing = [c for c in dict.fromkeys(named) if c not in header]
    if missing:
        raise SourceError(
            f"column(s) {', '.join(missing)} named in the mapping are not in the file; "
            f"its columns are {', '.join(header)}",
            path=str(path),
        )
    for spec in schema.fields:
        if spec.required and spec.name != schema.id_field and spec.name not in mapping.rules:
            if spec.name not in header:
                raise SourceError(
                    f"has no column for the required field '{spec.name}' and the mapping names "
                    f"none; its columns are {', '.join(header)}",
                    path=str(path),
                    field=spec.name,
                )


def apply_rule(rule: FieldRule, data: pd.DataFrame) -> pd.Series:
    """The raw values of one canonical field (text, or typed when the file is typed)."""
    if rule.value is not None:
        out = pd.Series([rule.value] * len(data), index=data.index, dtype="object")
    elif rule.field is not None:
        out = data[rule.field]
    elif rule.fields is not None:
        out = as_text(data[rule.fields[0]])
        for col in rule.fields[1:]:
            out = out.fillna(as_text(data[col]))
    else:
        out = _template(rule.template or "", data)
    if rule.match is not None:
        text = as_text(out)
        result = pd.Series([None] * len(text), index=text.index, dtype="object")
        for pattern, value in rule.match.items():
            hit = result.isna() & text.str.contains(pattern, regex=True, na=False)
            result[hit] = None if value is None else str(value)
        return result
    if rule.null_if or rule.map is not None:
        text = as_text(out)
        if rule.null_if:
            text = text.where(~text.isin(rule.null_if), None)
        if rule.map is not None:
            lookup = {k: (None if v is None else str(v)) for k, v in rule.map.items()}
            mapped = text.map(lookup)
            # Codes the map does not know stay as published, so validation can name them.
            out = mapped.where(text.isin(list(lookup)), text)
        else:
            out = text
    return out


def _template(template: str, data: pd.DataFrame) -> pd.Series:
    pieces = _TEMPLATE_PART.split(template)
    parts: list[pa.ChunkedArray | pa.Scalar] = []
    present = None
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            if piece:
                parts.append(pa.scalar(piece, pa.large_string()))
            continue
        text = arrow_of(as_text(data[piece]))
        present = pc.is_valid(text) if present is None else pc.or_(present, pc.is_valid(text))
        parts.append(pc.cast(text, pa.large_string()))
    if present is None:  # no column named: the template is a constant
        return pd.Series([template] * len(data), index=data.index, dtype="str")
    joined = pc.binary_join_element_wise(
        *parts, pa.scalar("", pa.large_string()), null_handling="replace", null_replacement=""
    )
    out = pd.Series(pc.utf8_trim(joined, " -—–:;,").to_pandas(), index=data.index)
    return out.where(
        pd.Series(present.to_numpy(zero_copy_only=False), index=data.index) & (out != ""), None
    )
