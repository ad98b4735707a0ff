"""The riskmap command as a user runs it: exit codes, messages, progress, help."""

from __future__ import annotations

import json
import re
import shutil
import tomllib

from typer.testing import CliRunner

from geo_service import cli
from geo_service.cli import app
from tests.conftest import CATALOG
from tests.helpers import (
    UCDP_CSV,
    cp1252_places,
    csv_cut_mid_row,
    read_text_csv,
    write_text_csv,
)

runner = CliRunner(env={"COLUMNS": "200"})


def _ucdp_mapping(tmp_path):
    raw = tomllib.loads(CATALOG.read_text())["sources"]["ucdp_ged_caf"]["mapping"]
    lines = []
    for key, value in raw.items():
        lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / "ucdp_mapping.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


def _validate(path, tmp_path, *extra: str):
    """``riskmap validate`` of a file with the catalog's UCDP mapping."""
    args = ["validate", str(path), "--kind", "incidents", "--mapping", str(_ucdp_mapping(tmp_path))]
    return runner.invoke(app, [*args, *extra])


def test_help_explains_every_command() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for command in ("build", "validate", "layers", "serve"):
        assert command in r.output
    r = runner.invoke(app, ["build", "--help"])
    assert (
        "--strict" in r.output
        and "--catalog" in r.output
        and "previous build stays current" in r.output
    )


def test_validate_clean_real_file(tmp_path) -> None:
    r = _validate(UCDP_CSV, tmp_path, "--crs", "EPSG:4326")
    assert r.exit_code == 0, r.output
    assert "1848" in r.output


def test_validate_reports_line_and_field_and_exits_1(tmp_path) -> None:
    frame = read_text_csv(UCDP_CSV).head(30)
    frame.loc[4, "latitude"] = "north"
    path = write_text_csv(frame, tmp_path / "bad.csv")
    rejects = tmp_path / "problems.csv"
    r = _validate(path, tmp_path, "--crs", "EPSG:4326", "--rejects", str(rejects))
    assert r.exit_code == 1
    assert "field 'latitude': expected a number, got 'north'" in r.output
    assert rejects.exists() and "north" in rejects.read_text()


def test_validate_missing_file_and_missing_crs_exit_2(tmp_path) -> None:
    r = runner.invoke(app, ["validate", str(tmp_path / "none.csv"), "--kind", "incidents"])
    assert r.exit_code == 2 and "file not found" in r.output
    r = _validate(UCDP_CSV, tmp_path)
    assert r.exit_code == 2 and "has no CRS and none is declared" in r.output


def test_build_layers_and_strict(tmp_path, monkeypatch) -> None:
    builds = tmp_path / "build"
    r = runner.invoke(
        app, ["build", "--catalog", str(CATALOG), "--build-dir", str(builds), "--strict"]
    )
    assert r.exit_code == 1 and "--strict allows none" in r.output
    quick = ["--surface-cell", "2000"]
    r = runner.invoke(app, ["build", "--catalog", str(CATALOG), "--build-dir", str(builds), *quick])
    assert r.exit_code == 0, r.output
    for bar in ("reading ucdp_ged_caf", "validating ucdp_ged_caf", "writing layers"):
        assert bar in r.output  # the progress bars
    built = json.loads((builds / "current" / "catalog.json").read_text())
    assert built["layers"]["risk_surface"]["cell_m"] == 2000.0
    # A terminal's usual 80 columns gets a block a layer, a wide one a table; both give every
    # value whole (the tables once cut bounds, sources and licences short at 80 columns).
    wholes = ("1850", "CC BY 4.0", "usgs_africa_diamond_facilities", "1991-08-08 … 2022-12-30")
    for width, table in ((80, False), (250, True)):
        monkeypatch.setattr(cli.out, "width", width)
        r = runner.invoke(app, ["layers", "--build-dir", str(builds)])
        assert r.exit_code == 0
        for word in ("incidents", "tailings_dams", "604", *wholes):
            assert word in r.output, (width, word)
        assert not re.search(r"\w…", r.output), width  # no value cut short
        assert ("┃ layer " in r.output) is table
        assert max(map(len, r.output.splitlines())) <= width
    r = runner.invoke(app, ["layers", "--build-dir", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no current build" in r.output


def _error_line(output: str) -> str:
    """The one line the CLI prints for an error (progress bars may come before it)."""
    (line,) = [ln for ln in output.splitlines() if ln.startswith("error:")]
    return line


def test_validate_windows_text_is_one_line_with_line_byte_and_encoding(tmp_path) -> None:
    frame = cp1252_places()
    path = tmp_path / "places.csv"
    frame.to_csv(path, index=False, encoding="cp1252")
    data = path.read_bytes()
    offset = next(i for i, b in enumerate(data) if b >= 0x80)
    line = data[:offset].count(b"\n") + 1
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('source_id = "geonameid"\ncountry = "country_iso3"\n')
    args = ["validate", str(path), "--kind", "communities", "--crs", "EPSG:4326"]
    r = runner.invoke(app, [*args, "--mapping", str(mapping)])
    assert r.exit_code == 2, r.output
    error = _error_line(r.output)
    assert f"{path}: line {line}, byte offset {offset}: byte 0x{data[offset]:02X}" in error
    assert error.endswith("(riskmap validate: --encoding cp1252)")
    r = runner.invoke(app, [*args, "--mapping", str(mapping), "--encoding", "cp1252"])
    assert r.exit_code == 0, r.output
    assert f"{len(frame)} kept" in r.output


def test_build_with_a_truncated_source_is_one_line_and_keeps_its_report(tmp_path) -> None:
    layers = tmp_path / "layers"
    shutil.copytree(CATALOG.parent, layers, ignore=shutil.ignore_patterns("build"))
    ucdp = layers / "sources" / "ucdp_ged_v23_1_caf" / UCDP_CSV.name
    _, line = csv_cut_mid_row(UCDP_CSV, ucdp, record=1200)
    builds = tmp_path / "build"
    args = ["build", "--catalog", str(layers / "sources.toml"), "--build-dir", str(builds)]
    r = runner.invoke(app, [*args, "--surface-cell", "2000"])
    assert r.exit_code == 2, r.output
    error = _error_line(r.output)
    assert error.startswith(f"error: source ucdp_ged_caf: {ucdp}: line {line}: the file ends")
    assert error.endswith("it looks truncated; copy it again from the publisher")
    assert not (builds / "current").exists()
    (failed,) = builds.glob("failed-*")
    assert error.removeprefix("error: ") in (failed / "error.txt").read_text()
