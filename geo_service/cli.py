"""``riskmap``: build, check, describe and serve the risk layers.

Exit codes: 0 success; 1 the data has problems (a refused build, rejected rows in
``validate``); 2 nothing could be done (a missing or unreadable file, a bad catalog, no build).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from geo_service.build import Reporter, build
from geo_service.catalog import Mapping, SourceEntry, load_catalog
from geo_service.errors import BuildError, CatalogError, NoBuildError, RiskMapError, SourceError
from geo_service.ingest.base import ProgressFn
from geo_service.ingest.validate import SourceResult, validate_source
from geo_service.schemas import Kind
from geo_service.settings import ApiSettings, BuildSettings
from geo_service.store.files import current_build_id, read_build_catalog
from geo_service.terminal import show_table

app = typer.Typer(
    name="riskmap",
    help="Build risk layers for communities affected by diamond mining from public evidence, "
    "check source files, and serve the layers over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class RichReporter(Reporter):
    """Progress bars on stderr, one per task."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def task(self, label: str, total: int) -> ProgressFn:
        """A bar that fills as the task reports (done, total)."""
        task_id = self.progress.add_task(label, total=max(total, 1))

        def update(done: int, total: int) -> None:
            self.progress.update(task_id, completed=done, total=max(total, 1))

        return update

    def log(self, message: str) -> None:
        """Print above the bars."""
        self.progress.console.print(message, soft_wrap=True, highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _fail(exc: Exception, code: int) -> typer.Exit:
    # The message is the user's data (paths, [sources.x] tables): never read as markup.
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command("build")
def build_cmd(
    catalog: Annotated[
        Path | None,
        typer.Option(help="Source catalog to build from [default: layers/sources.toml]."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Refuse the build on any rejected row or cleared value."),
    ] = False,
    if_needed: Annotated[
        bool,
        typer.Option("--if-needed", help="Do nothing when the current build has the same inputs."),
    ] = False,
    build_dir: Annotated[
        Path | None,
        typer.Option(help="Where builds go [default: layers/build, or RISKMAP_BUILD_DIR]."),
    ] = None,
    surface_cell: Annotated[
        float | None,
        typer.Option(
            help="Risk-surface cell size in metres for this build, instead of risk.toml's "
            "(e.g. 1000 for a quick preview) [default: RISKMAP_SURFACE_CELL_M, or risk.toml]."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Compute the risk model (the partitions of the communities and of the population cells, the surface's tiles) on "
            "a local Dask cluster of this many worker processes (needs the 'cluster' extra) "
            "[default: 0, in this process]."
        ),
    ] = 0,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Compute the risk model on a running Dask scheduler, tcp://HOST:PORT."),
    ] = None,
) -> None:
    """Read, validate and write every source of the catalog as a new build, then make it current.

    The previous build stays current if anything fails. Problems found go to rejects.csv in the
    build folder (in failed-<build-id>/ when the build is refused).
    """
    settings = BuildSettings()
    if build_dir is not None:
        settings = settings.model_copy(update={"build_dir": build_dir})
    if surface_cell is not None:
        if surface_cell <= 0:
            raise _fail(ValueError(f"--surface-cell must be > 0, got {surface_cell:g}"), 2)
        settings = settings.model_copy(update={"surface_cell_m": surface_cell})
    if workers < 0:
        raise _fail(ValueError(f"--workers must be >= 0, got {workers}"), 2)
    if workers or scheduler:
        settings = settings.model_copy(update={"workers": workers, "scheduler": scheduler})
    try:
        with _progress() as progress:
            result = build(
                settings,
                catalog_path=catalog,
                strict=strict,
                if_needed=if_needed,
                reporter=RichReporter(progress),
            )
    except BuildError as exc:
        raise _fail(exc, 1) from exc
    except RiskMapError as exc:
        raise _fail(exc, 2) from exc
    if not result.skipped:
        _print_sources(result.sources)
        out.print(f"build [bold]{result.build_id}[/] written to {result.path}")
    if settings.store_url:
        from geo_service.store.postgis import publish

        build_id = current_build_id(settings.build_dir)
        try:
            with out.status(f"publishing {build_id} into PostGIS"):
                publish(settings.store_url, settings.build_dir, build_id, settings.keep_builds)
        except Exception as exc:  # noqa: BLE001 - the database's own words, and exit 2
            raise _fail(
                RuntimeError(f"publishing {build_id} into PostGIS failed: {exc}"), 2
            ) from exc
        out.print(f"build [bold]{build_id}[/] published into PostGIS and made current there")


def _print_sources(results: list[SourceResult]) -> None:
    """One line per source: what was read, kept, and what happened to the rest."""
    for r in results:
        c = r.counts
        parts = [f"{c['read']} read"]
        parts += [f"{c[k]} {k}" for k in ("filtered",) if c[k]]
        parts.append(f"[bold]{c['kept']} kept[/]")
        colours = {"rejected": "red", "cleared": "yellow", "repaired": "green", "flagged": "cyan"}
        parts += [f"[{colours[k]}]{c[k]} {k}[/]" for k in colours if c[k]]
        out.print(f"{r.key} ({r.kind.value}): " + ", ".join(parts), highlight=False)


@app.command("validate")
def validate_cmd(
    path: Annotated[Path, typer.Argument(help="The file to check.")],
    kind: Annotated[Kind, typer.Option(help="Which canonical schema the file should fit.")],
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="TOML file with a mapping table (as [sources.<key>.mapping] in the catalog)."
        ),
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option(help="CRS of the coordinates when the file has none, e.g. EPSG:4326."),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="Format, when the suffix does not tell.")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a GeoPackage or KML file.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV file.")] = "utf-8",
    rejects: Annotated[
        Path | None, typer.Option(help="Write every problem to this CSV file.")
    ] = None,
    show: Annotated[int, typer.Option(help="How many problems to print.")] = 20,
    year: Annotated[
        int | None, typer.Option(help="population: the year the counts are for.")
    ] = None,
) -> None:
    """Check one file against a kind's schema and report every problem; builds nothing.

    Exits 0 when every row is usable, 1 when some rows would be rejected, 2 when the file
    cannot be read at all.
    """
    try:
        raw_mapping = tomllib.loads(mapping.read_text(encoding="utf-8")) if mapping else {}
        entry = SourceEntry(
            key="file",
            kind=kind,
            title=path.name,
            path=path,
            adapter=adapter,
            layer=layer,
            crs=crs,
            encoding=encoding,
            publisher="(not in the catalog)",
            licence="(unknown)",
            attribution="(unknown)",
            retrieved=dt.date.today(),
            year=year,
            mapping=Mapping.parse(raw_mapping, kind, str(mapping or "mapping")),
        )
        project = BuildSettings().catalog
        reference = load_catalog(project).reference if project.exists() else None
        size = path.stat().st_size if path.exists() else 0
        with _progress() as progress:
            reporter = RichReporter(progress)
            reading = reporter.task(f"reading {path.name}", size)
            validating = reporter.task(f"validating {path.name}", 1)
            result = validate_source(entry, reference, reading, validating=validating)
    except ValidationError as exc:  # an option the kind needs (a population's --year)
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise _fail(CatalogError(f"{path}: {message}"), 2) from exc
    except (SourceError, CatalogError, tomllib.TOMLDecodeError, OSError) as exc:
        raise _fail(exc, 2) from exc
    _print_sources([result])
    for note in result.notes:
        out.print(note, highlight=False)
    problems = result.problems
    for message, action in zip(
        problems["message"].head(show), problems["action"].head(show), strict=True
    ):
        colour = {"rejected": "red", "cleared": "yellow", "flagged": "cyan", "repaired": "green"}[
            action
        ]
        out.print(f"[{colour}]{action:>8}[/] {message}", highlight=False, soft_wrap=True)
    if len(problems) > show:
        out.print(f"… and {len(problems) - show} more (use --rejects FILE to write them all)")
    if rejects is not None:
        problems.to_csv(rejects, index=False)
        out.print(f"problems written to {rejects}")
    if result.counts["rejected"]:
        raise typer.Exit(1)


@app.command("layers")
def layers_cmd(
    build_dir: Annotated[
        Path | None, typer.Option(help="Builds folder [default: layers/build].")
    ] = None,
) -> None:
    """Describe the current build: its layers, their extents, sources and licences."""
    settings = BuildSettings()
    try:
        catalog = read_build_catalog(build_dir or settings.build_dir)
    except NoBuildError as exc:
        raise _fail(exc, 2) from exc
    out.print(
        f"build [bold]{catalog['build_id']}[/], made {catalog['created']} by version "
        f"{catalog['code_version']}"
    )
    layer_rows = []
    for layer in catalog["layers"].values():
        bounds = ", ".join(f"{v:.2f}" for v in layer["bounds"]) if layer["bounds"] else "—"
        time = " … ".join(layer["time_extent"]) if layer["time_extent"] else "—"
        layer_rows.append(
            (
                layer["id"],
                layer["count"],
                ", ".join(layer["geometry_types"]),
                bounds,
                time,
                ", ".join(layer["sources"]),
            )
        )
    show_table(
        out,
        "Layers",
        ("layer", "features", "geometry", "bounds (W, S, E, N)", "time", "sources"),
        layer_rows,
        wrap=("sources",),
        right=("features",),
    )
    show_table(
        out,
        "Sources and licences",
        ("source", "publisher", "licence", "coverage", "kept", "rejected"),
        [
            (
                key,
                s["publisher"],
                s["licence"],
                ", ".join(s["coverage"]["countries"]) or "—",
                s["counts"]["kept"],
                s["counts"]["rejected"],
            )
            for key, s in catalog["sources"].items()
        ],
        wrap=("publisher", "licence", "coverage"),
        right=("kept", "rejected"),
    )
    out.print(
        f"problems: {catalog['rejects']['rows']} (see {catalog['rejects']['file']} in the build folder)"
    )


@app.command("backtest")
def backtest_cmd(
    table: Annotated[
        Path | None,
        typer.Option(
            help="Failures table [default: layers/sources/tailings_failures/tailings_failures.csv]."
        ),
    ] = None,
    risk: Annotated[
        Path | None, typer.Option(help="Risk parameters [default: layers/risk.toml].")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Also write the per-failure results as CSV here.")
    ] = None,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as the methodology shows it.")
    ] = False,
) -> None:
    """The run-out model against historic tailings-dam failures, leave-one-out.

    Exit code 1 when the spreads in the risk parameters are not those the table gives, or
    fewer than 70 % of the observed run-outs fall inside their 80 % band.
    """
    from geo_service.risk.backtest import (
        MIN_COVERAGE,
        markdown,
        read_failures,
        rounded,
        run_backtest,
    )
    from geo_service.risk.params import load_risk_params

    try:
        result = run_backtest(read_failures(table))
        params = load_risk_params(risk or BuildSettings().catalog.parent / "risk.toml")
    except (RiskMapError, ValueError) as exc:
        raise _fail(exc, 2) from exc
    used = params.factors["tailings_exposure"].runout_spread_log10
    fitted = rounded(result.spread)
    if as_markdown:
        print(markdown(result))
    else:
        show_table(
            out,
            f"Run-out backtest: {result.n} tailings failures (leave-one-out)",
            (
                "failure",
                "date",
                "H m",
                "VT Mm³",
                "observed km",
                "Rico km",
                "CLL km",
                "80 % band km",
                "inside",
            ),
            [
                (
                    r.failure_id,
                    r.date,
                    f"{r.height_m:g}",
                    f"{r.stored_volume_m3 / 1e6:.3g}",
                    f"{r.runout_km:g}",
                    f"{r.rico2008_p50_km:.3g}",
                    f"{r.concha_larrauri_lall2018_p50_km:.3g}",
                    f"{r.p10_km:.2g} – {r.p90_km:.3g}",
                    "yes" if r.inside else "NO",
                )
                for r in result.cases.itertuples()
            ],
            right=("H m", "VT Mm³", "observed km", "Rico km", "CLL km", "80 % band km", "inside"),
        )
        for law in fitted:
            out.print(
                f"{law}: log10 spread {result.spread[law]:.3f} (risk.toml: {used.get(law)}), "
                f"bias {result.bias[law]:+.2f} (negative: the law over-predicts), "
                f"inside the band {result.coverage[law]:.0%}, rank correlation "
                f"{result.rank_correlation[law]:.2f}"
            )
        out.print(
            f"both laws (the model): inside the 80 % band {result.coverage['mixture']:.0%} "
            f"(aim ≥ {MIN_COVERAGE:.0%}), rank correlation {result.rank_correlation['mixture']:.2f}"
        )
    if csv is not None:
        result.cases.to_csv(csv, index=False)
        out.print(f"per-failure results written to {csv}")
    if dict(used) != fitted:
        err.print(f"[bold red]risk.toml's spreads {dict(used)} are not the fitted {fitted}[/]")
        raise typer.Exit(1)
    if result.coverage["mixture"] < MIN_COVERAGE:
        raise typer.Exit(1)


@app.command("serve")
def serve_cmd(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on [default: 127.0.0.1, or RISKMAP_HOST]."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000, or RISKMAP_PORT].")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the current build over HTTP (a new build is picked up without a restart)."""
    import uvicorn

    settings = ApiSettings()
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=update)
    out.print(f"serving {settings.build_dir} on http://{settings.host}:{settings.port}")
    uvicorn.run(
        "geo_service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="info",
    )


@app.command("bundle")
def bundle_cmd(
    map_id: Annotated[
        str | None, typer.Argument(help="The map to carry (see /maps), e.g. sierra-leone-kono.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="The zip to write, e.g. kono.zip.")
    ] = None,
    lang: Annotated[str, typer.Option(help="The map's language: en, fr or pt.")] = "en",
    role: Annotated[
        str,
        typer.Option(
            help="Whose view it holds: anonymous (the public's), or viewer, analyst or admin "
            "(analyst and admin: restricted rows too, and the bundle says so)."
        ),
    ] = "anonymous",
    verify: Annotated[
        Path | None,
        typer.Option("--verify", help="Check a bundle's files against its manifest instead."),
    ] = None,
) -> None:
    """Write one map, its data, tiles, basemap and credits as a zip that opens offline
    (unzip, open index.html), or check one with --verify."""
    from geo_service.bundle import BundleError, gather, verify_bundle, write_bundle
    from geo_service.maps.definitions import LANGUAGES
    from geo_service.store.base import Access

    if verify is not None:
        try:
            meta = verify_bundle(verify)
        except BundleError as exc:
            raise _fail(exc, 1) from exc
        out.print(
            f"{verify}: {len(meta['files'])} files match the manifest "
            f"(map {meta['map']}, build {meta['build_id']}, made {meta['created']})"
        )
        return
    if map_id is None or out_file is None:
        raise _fail(ValueError("give a map and --out FILE.zip (or --verify FILE.zip)"), 2)
    if lang not in LANGUAGES:
        raise _fail(ValueError(f"--lang must be one of {', '.join(LANGUAGES)}, not {lang!r}"), 2)
    try:
        access = Access(role)
    except ValueError:
        names = ", ".join(a.value for a in Access)
        raise _fail(ValueError(f"--role must be one of {names}, not {role!r}"), 2) from None
    try:
        with _progress() as progress:
            reporter = RichReporter(progress)
            tasks: dict[str, ProgressFn] = {}

            def report(label: str, done: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = reporter.task(label, total)
                tasks[label](done, total)

            bundle = gather(ApiSettings(), map_id, lang, access, report)
            path = write_bundle(bundle, out_file)
    except RiskMapError as exc:
        raise _fail(exc, 2) from exc
    size = path.stat().st_size
    out.print(
        f"{path}: {len(bundle.files) + 1} files, {size / 1e6:.1f} MB "
        f"(map {map_id}, {lang}, {access.value}, build {bundle.build_id})"
    )


tokens_app = typer.Typer(
    help="Access tokens: who may see restricted rows precisely (analyst, admin) or sign in "
    "without seeing them (viewer). The service keeps only their SHA-256 digests.",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="token")


def _tokens_file(path: Path | None) -> Path:
    chosen = path or ApiSettings().tokens_file
    if chosen is None:
        raise typer.BadParameter(
            "say where the tokens live: --file PATH, or set RISKMAP_TOKENS_FILE",
            param_hint="--file",
        )
    return chosen


@tokens_app.command("add")
def token_add(
    role: Annotated[str, typer.Option(help="viewer, analyst or admin.")],
    label: Annotated[str, typer.Option(help="Who holds it (kept beside the digest).")] = "",
    file: Annotated[
        Path | None, typer.Option(help="Tokens file [default: RISKMAP_TOKENS_FILE].")
    ] = None,
) -> None:
    """Make a token, print it once and keep only its digest in the tokens file."""
    from geo_service.api.auth import ROLES, file_line, new_token

    if role not in ROLES:
        raise _fail(ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}"), 2)
    path = _tokens_file(file)
    token = new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(file_line(token, ROLES[role], label.replace("\n", " ")) + "\n")
    path.chmod(0o600)
    err.print(
        f"token for {role}{f' ({label})' if label else ''} added to {path}; it is shown once, "
        "here, and cannot be recovered:",
        highlight=False,
    )
    out.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def token_list(
    file: Annotated[
        Path | None, typer.Option(help="Tokens file [default: RISKMAP_TOKENS_FILE].")
    ] = None,
) -> None:
    """The roles and labels of the configured tokens (never the tokens)."""
    from geo_service.api.auth import TokenError, read_tokens

    path = _tokens_file(file)
    try:
        tokens = read_tokens(path) if path.exists() else []
    except TokenError as exc:
        raise _fail(exc, 2) from exc
    show_table(
        out,
        None,
        ("role", "label", "digest (first 12)"),
        [(t.role.value, t.label, t.digest.hex()[:12]) for t in tokens],
        wrap=("label",),
    )


if __name__ == "__main__":
    app()
