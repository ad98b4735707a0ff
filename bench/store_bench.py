"""The service on PostGIS against pygeoapi's PostgreSQL provider and the embedded store, with the
URL lists, data and load of ``api_bench.py`` (200 bbox queries over 100,000 incident points).

Why: the store issue asks for bbox items from PostGIS at c=8 with p99 ≤ 50 ms (limit 100), at
least 10× pygeoapi's PostgreSQL provider on the same database and queries, one and two replicas
measured under the same load (with where the time goes), and the embedded default no slower
than before; the filters issue asks for filtered items (``filter=score > 50``, bbox, limit 100)
at c=8 with p99 ≤ 50 ms and at least 30× pygeoapi with the same CQL2 filter.

How (``run``): a throw-away PostGIS cluster (``tests/postgis.py``) holds the bench build,
published by ``riskmap``'s own ``publish``; pygeoapi reads the same table through a view with
one column per property. Targets, each a fresh server per repeat, order rotated:

* ``ours`` — embedded store, this checkout; ``before`` — embedded store at ``--before`` (a git
  worktree of that commit, same virtual environment);
* ``postgis`` — one replica on the database; ``postgis-2`` — two replicas, the load split
  between them (two ``wrk`` of c/2 connections each, run together);
* ``pygeoapi-pg`` — pygeoapi with its PostgreSQL provider on the same database, through the
  view; ``pygeoapi-pgt`` — the same on a table copied from the view (typed columns, primary
  key, GiST index, analysed): what the view's JSON costs pygeoapi; ``pygeoapi-pgs`` — the
  table again, its connections set to plan without parallel workers (``options``).

Workloads: ``features100``, ``features`` (bbox items) and ``filtered`` (the 100 ``limit=100``
queries with the CQL2 filter ``score > 50``; pygeoapi gets ``filter-lang=cql-text``, the only
text language it accepts). Before measuring ``filtered``, ``check_filtered`` compares the
answers of ``ours``, ``postgis`` and the three pygeoapi targets to 20 of its queries and stops
the run on any difference. Each row records the commit and a fingerprint of ``geo_service/``
as the server loaded it (``code``), so that edits of the working tree during a run show; with
``--checkout REF`` our servers (and the publishing) run from a worktree of that commit instead.

Servers run one uvicorn worker; a single server is pinned to core 0 and ``wrk`` to core 1, as in
``api_bench.py``; the second replica is pinned to core 1. PostgreSQL is not pinned. For each
load phase the CPU seconds of the servers, of PostgreSQL's processes and of ``wrk`` are read
from ``/proc`` and reported per request; ``db_ended_cpu_ms`` is the CPU of PostgreSQL processes
that ended during the load (parallel workers), read from the postmaster's reaped children.
Run from the repository root::

    .venv/bin/python bench/api_bench.py setup-peers    # once
    .venv/bin/python bench/api_bench.py make-data      # once
    .venv/bin/python bench/store_bench.py run --repeats 3 --before 70a0dbb
    .venv/bin/python bench/store_bench.py run --repeats 3 --workloads filtered \
        --targets ours,postgis,pygeoapi-pg,pygeoapi-pgt,pygeoapi-pgs \
        --checkout HEAD --idle-wait-s 3600
    .venv/bin/python bench/store_bench.py summary bench/results/store-*.tsv

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import api_bench
from api_bench import DATA, SUBSETS, one_pass
from benchlib import (
    RESULTS,
    ROOT,
    RUN,
    code_fingerprint,
    git_commit,
    git_head,
    mmm,
    start_server,
    stop_server,
    wait_for_idle,
)

sys.path.insert(0, str(ROOT))
from tests.postgis import cluster  # noqa: E402

PORTS = {
    "ours": 18293,
    "before": 18297,
    "postgis": 18294,
    "postgis-2": 18294,
    "pygeoapi-pg": 18296,
    "pygeoapi-pgt": 18299,
    "pygeoapi-pgs": 18300,
}
#: The second replica of ``postgis-2``.
SECOND = 18295
TARGETS = [
    "ours",
    "before",
    "postgis",
    "postgis-2",
    "pygeoapi-pg",
    "pygeoapi-pgt",
    "pygeoapi-pgs",
]
#: pygeoapi's collection per target, the relation it reads (the view, or a table copied from
#: it) and further provider settings: ``pygeoapi-pgs`` has its connections plan without
#: parallel workers, which PostgreSQL's defaults start for its count and its page.
PYGEOAPI_TABLES = {
    "pygeoapi-pg": ("incidents_pg", "incidents_pg", ""),
    "pygeoapi-pgt": ("incidents_pgt", "incidents_pgt", ""),
    "pygeoapi-pgs": (
        "incidents_pgs",
        "incidents_pgt",
        '        options:\n          options: "-c max_parallel_workers_per_gather=0"\n',
    ),
}
WORKLOADS = ["features", *SUBSETS, "filtered"]
#: Properties that are numbers in pygeoapi's view (the others are text, as ``->>`` gives them).
NUMERIC = {"score": "float8"}
#: Filtered queries whose answers are compared before measuring, and the targets compared.
CHECKED = 20
CHECK_TARGETS = ["ours", "postgis", "pygeoapi-pg", "pygeoapi-pgt", "pygeoapi-pgs"]
TICK = os.sysconf("SC_CLK_TCK")

PYGEOAPI_PG = """\
        data:
          host: {host}
          port: {port}
          dbname: {dbname}
          user: {user}
          password: ""
          search_path: [public]
        id_field: fid
        table: {table}
        geom_field: geom
"""


# --- the database ------------------------------------------------------------------------------


def publish_bench(url: str) -> None:
    """The bench build in the database, and a view of it for pygeoapi (one column per
    property, as a table made for it would have; ``score`` a number, so that pygeoapi's
    ``score > 50`` compares numbers)."""
    import psycopg

    from geo_service.store.postgis import publish

    publish(url, DATA / "build", "bench")
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT schema_name FROM riskmap.builds WHERE current").fetchone()[0]
        keys = conn.execute(
            f'SELECT json_object_keys(props) FROM "{schema}".incidents WHERE ord = 0'
        ).fetchall()
        columns = ", ".join(
            f"(props->>'{k}')::{NUMERIC[k]} AS \"{k}\""
            if k in NUMERIC
            else f"props->>'{k}' AS \"{k}\""
            for (k,) in keys
        )
        conn.execute(
            f"CREATE OR REPLACE VIEW public.incidents_pg AS SELECT fid, {columns}, geom "
            f'FROM "{schema}".incidents'
        )
        conn.execute(
            "DROP TABLE IF EXISTS public.incidents_pgt; "
            "CREATE TABLE public.incidents_pgt AS SELECT * FROM public.incidents_pg; "
            "ALTER TABLE public.incidents_pgt ADD PRIMARY KEY (fid); "
            "CREATE INDEX ON public.incidents_pgt USING gist (geom); "
            "ANALYZE public.incidents_pgt"
        )


def postgres_pids(url: str) -> list[int]:
    """The cluster's postmaster and every process it started."""
    host = parse_qs(urlsplit(url).query)["host"][0]
    master = int((Path(host) / "data" / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process still alive."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def ended_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the children ``pid`` has waited for: for the postmaster,
    the backends and parallel workers that ended (a query's parallel workers live for that
    query only, so :func:`cpu_s` never sees them)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / TICK


# --- servers -----------------------------------------------------------------------------------


def _ours(port: int) -> list[str]:
    python = ROOT / ".venv" / "bin" / "python"
    uv = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return [str(python), "-m", "uvicorn", "--factory", "geo_service.api.app:create_app", *uv]


def worktree(ref: str, prefix: str = "before") -> Path:
    """A checkout of ``ref`` beside the benchmark's other run files."""
    path = RUN / f"{prefix}-{ref}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), ref],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


def start(
    target: str, url: str, before: str, checkout: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    """The target's server(s), each once it answers; ours from ``checkout`` if given (a
    worktree), else from this working tree."""
    env = dict(os.environ, RISKMAP_BUILD_DIR=str(DATA / "build"))
    env.pop("RISKMAP_STORE_URL", None)
    if target in PYGEOAPI_TABLES:
        name, table, settings = PYGEOAPI_TABLES[target]
        extra = api_bench.pygeoapi_collection(
            name, "PostgreSQL", PYGEOAPI_PG.format(table=table, **_pg_fields(url)) + settings
        )
        return [api_bench.start_pygeoapi(PORTS[target], extra)]
    cwd = ROOT
    if checkout is not None:
        cwd = checkout
        env["PYTHONPATH"] = str(cwd)
    if target == "before":
        cwd = worktree(before)
        env["PYTHONPATH"] = str(cwd)
    if target.startswith("postgis"):
        env["RISKMAP_STORE_URL"] = url
    ports = [PORTS[target]] + ([SECOND] if target == "postgis-2" else [])
    return [
        start_server(
            f"{target}-{port}",
            _ours(port),
            port,
            cpu=cpu,
            env=env,
            cwd=cwd,
            ready_path="/health",
        )
        for cpu, port in enumerate(ports)
    ]


def _pg_fields(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return {
        "host": query["host"][0],
        "port": query["port"][0],
        "dbname": parts.path.strip("/"),
        "user": parts.username or "",
    }


# --- measuring ---------------------------------------------------------------------------------


def load(
    ports: list[int], paths: list[str], seconds: int, conc: int, servers: list[int], url: str
) -> dict[str, float]:
    """The load split evenly over ``ports``; throughput summed, p99 the worst replica's; CPU
    seconds per request of the servers, PostgreSQL and wrk. PostgreSQL's processes are listed
    before and after the load: a connection opened during it counts from its start."""
    db = postgres_pids(url)
    before_s, before_db = cpu_s(servers), cpu_s(db)
    before_ended = ended_cpu_s(db[0]) if db else 0.0
    before_wrk = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            api_bench.wrk_command(port, paths, seconds, conc // len(ports)),
            stdout=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    results = [api_bench.wrk_result(p.communicate(timeout=600)[0]) for p in procs]
    after_wrk = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_s, after_db = cpu_s(servers), cpu_s(postgres_pids(url))
    after_ended = ended_cpu_s(db[0]) if db else 0.0
    requests = sum(r["requests"] for r in results) or 1

    def spent(a: dict[int, float], b: dict[int, float]) -> float:
        return sum(v - b.get(pid, 0.0) for pid, v in a.items())

    wrk_s = (after_wrk.ru_utime + after_wrk.ru_stime) - (before_wrk.ru_utime + before_wrk.ru_stime)
    return {
        "rps": round(sum(r["rps"] for r in results), 1),
        "p50_ms": round(statistics.mean(r["p50_ms"] for r in results), 2),
        "p90_ms": round(max(r["p90_ms"] for r in results), 2),
        "p99_ms": round(max(r["p99_ms"] for r in results), 2),
        "requests": requests,
        "errors": sum(r["errors"] for r in results),
        "non200": sum(r["non200"] for r in results),
        "server_cpu_ms": round(spent(after_s, before_s) * 1000 / requests, 3),
        "db_cpu_ms": round(spent(after_db, before_db) * 1000 / requests, 3),
        "db_ended_cpu_ms": round((after_ended - before_ended) * 1000 / requests, 3),
        "wrk_cpu_ms": round(wrk_s * 1000 / requests, 3),
    }


def paths_of(target: str, workload: str) -> list[str]:
    """The workload's paths on the target (ours and pygeoapi's as in ``api_bench.py``)."""
    base = "pygeoapi" if target in PYGEOAPI_TABLES else "ours"
    paths = api_bench.urls(base, workload)
    if target in PYGEOAPI_TABLES:
        name = PYGEOAPI_TABLES[target][0]
        paths = [p.replace("/incidents_gpkg/", f"/{name}/") for p in paths]
    return paths


def _get(port: int, path: str) -> dict:
    """A JSON answer, or an error naming the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    if r.status != 200:
        raise SystemExit(f"GET {path} on port {port}: HTTP {r.status}: {body[:300]!r}")
    return json.loads(body)


def _every_match(port: int, path: str, matched: int) -> set[str]:
    """The ids of every feature a filtered query matches, in pages of 10,000 (the largest page
    both servers give)."""
    base = path.replace("&limit=100", "&limit=10000").replace("&offset=100", "")
    ids: set[str] = set()
    for offset in range(0, max(matched, 1), 10_000):
        page = _get(port, f"{base}&offset={offset}")
        ids |= {str(f["id"]) for f in page["features"]}
    return ids


def check_filtered(url: str, fh, checkout: Path | None = None) -> list[dict[str, object]]:
    """Before measuring: for ``CHECKED`` of the filtered queries (evenly spread over the list),
    each of ``CHECK_TARGETS`` must give the same ``numberMatched`` and the same set of ids over
    every matching feature (the whole match, paged), and only features with ``score > 50`` on
    the measured page. The measured pages themselves differ where more than 100 features match:
    ours are in build order, pygeoapi's in the order of its ``id_field`` as text (``i1``,
    ``i10``, ``i100``, …); ours on the two stores must give the same page, and pygeoapi on the
    view and on the table the same page. Rows go to ``fh`` (``phase=check``); any difference
    ends the run."""
    lines = (DATA / "filtered.txt").read_text().split()
    picked = set(range(0, len(lines), max(1, len(lines) // CHECKED))[:CHECKED])
    paths = {t: paths_of(t, "filtered") for t in CHECK_TARGETS}
    procs = []
    rows: list[dict[str, object]] = []
    try:
        for target in CHECK_TARGETS:
            procs += start(target, url, "HEAD", checkout)
        for i in sorted(picked):
            pages = {t: _get(PORTS[t], paths[t][i]) for t in CHECK_TARGETS}
            matched = {t: int(pages[t]["numberMatched"]) for t in CHECK_TARGETS}
            scores_ok = all(
                f["properties"]["score"] is not None and float(f["properties"]["score"]) > 50
                for page in pages.values()
                for f in page["features"]
            )
            page_ids = {t: [str(f["id"]) for f in pages[t]["features"]] for t in CHECK_TARGETS}
            every = {t: _every_match(PORTS[t], paths[t][i], matched[t]) for t in CHECK_TARGETS}
            first = CHECK_TARGETS[0]
            row: dict[str, object] = {
                "query": lines[i],
                **{f"matched_{t}": matched[t] for t in CHECK_TARGETS},
                "returned": len(page_ids[first]),
                "matched_equal": len(set(matched.values())) == 1,
                "ids_equal": all(every[t] == every[first] for t in CHECK_TARGETS)
                and len(every[first]) == matched[first],
                "page_ours_equal": page_ids["ours"] == page_ids["postgis"],
                "page_pygeoapi_equal": all(
                    page_ids[t] == page_ids["pygeoapi-pg"] for t in PYGEOAPI_TABLES
                ),
                "page_set_equal_pygeoapi": set(page_ids["ours"]) == set(page_ids["pygeoapi-pg"]),
                "scores_ok": scores_ok,
            }
            rows.append(row)
            fh.write(
                "\t".join(
                    f"{k}={v}"
                    for k, v in {"workload": "filtered", "target": "all", "phase": "check"}.items()
                )
                + "\t"
                + "\t".join(f"{k}={v}" for k, v in row.items())
                + "\n"
            )
            fh.flush()
            print(
                f"check #{i:<3} matched {matched} page {row['returned']} "
                f"ids equal {row['ids_equal']} pages ours {row['page_ours_equal']} "
                f"pygeoapi page set {row['page_set_equal_pygeoapi']} scores>50 {scores_ok}",
                flush=True,
            )
    finally:
        for proc in procs:
            stop_server(proc)
    bad = [
        r
        for r in rows
        if not all(
            r[k]
            for k in (
                "matched_equal",
                "ids_equal",
                "page_ours_equal",
                "page_pygeoapi_equal",
                "scores_ok",
            )
        )
    ]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(rows)} filtered queries differ: {bad[0]}")
    return rows


def run(
    repeats: int,
    load_s: int,
    conc: int,
    cap_s: float,
    workloads: list[str],
    before: str,
    targets: list[str],
    idle_wait_s: float = 120.0,
    checkout: str | None = None,
) -> Path:
    """Every workload and target, fresh servers per repeat, order rotated; TSV of results.

    With ``checkout`` (a commit), our servers and the publishing run from a worktree of it,
    not from this working tree (whose uncommitted changes may change during the run)."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"store-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.tsv"
    tree = None
    if checkout is None:
        commit = git_commit()
        print(f"measuring {git_head()}, code {code_fingerprint()}", flush=True)
    else:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", f"{checkout}^{{commit}}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        tree = worktree(commit, "at")
        if "geo_service" in sys.modules:
            raise SystemExit("geo_service was imported from the working tree already")
        sys.path.insert(0, str(tree))  # publish with the measured code
        print(f"measuring commit {commit} from {tree.relative_to(ROOT)}", flush=True)
    with ExitStack() as stack, out.open("w") as fh:
        url = stack.enter_context(cluster())
        publish_bench(url)
        if "filtered" in workloads:
            check_filtered(url, fh, tree)
        for workload in workloads:
            for rep in range(1, repeats + 1):
                order = targets[rep - 1 :] + targets[: rep - 1]
                for target in order:
                    idle = wait_for_idle(0.85, idle_wait_s)
                    # what the server is about to load
                    code = "worktree" if tree is not None else code_fingerprint()
                    paths = paths_of(target, workload)
                    procs = start(target, url, before, tree)
                    ports = [PORTS[target]] + ([SECOND] if target == "postgis-2" else [])
                    try:
                        rows = [("cold", one_pass(target, paths, cap_s, ports[0]))]
                        rows.append(("warm", one_pass(target, paths, cap_s, ports[0])))
                        servers = [p.pid for p in procs]
                        rows.append(("load", load(ports, paths, load_s, conc, servers, url)))
                    finally:
                        for p in procs:
                            stop_server(p)
                    for phase, res in rows:
                        fields = {
                            "commit": commit,
                            "before": before,
                            "workload": workload,
                            "target": target,
                            "repeat": rep,
                            "phase": phase,
                            "idle_before": round(idle, 3),
                            "code": code,
                            **res,
                        }
                        fh.write("\t".join(f"{k}={v}" for k, v in fields.items()) + "\n")
                        fh.flush()
                        print(
                            f"{workload:12} {target:12} #{rep} {phase:4} rps={res['rps']:>8} "
                            f"p50={res['p50_ms']:>8} p99={res['p99_ms']:>8} "
                            f"non200={res.get('non200', 0):.0f}",
                            flush=True,
                        )
    print(f"wrote {out.relative_to(ROOT)}")
    return out


def summary(paths: list[Path]) -> None:
    """Medians per workload, target and phase; the ratios the issue names."""
    rows = [
        dict(t.split("=", 1) for t in line.split("\t"))
        for p in paths
        for line in p.read_text().splitlines()
    ]
    checks = [r for r in rows if r["phase"] == "check"]
    rows = [r for r in rows if r["phase"] != "check"]
    codes = sorted({r["code"] for r in rows if "code" in r} - {"worktree"})
    if len(codes) > 1:
        print(f"the code changed during the run (geo_service/ fingerprints {', '.join(codes)})")
    fields = (
        "rps",
        "p50_ms",
        "p99_ms",
        "server_cpu_ms",
        "db_cpu_ms",
        "db_ended_cpu_ms",
        "wrk_cpu_ms",
    )
    med: dict[tuple[str, str, str], dict[str, float]] = {}
    print(
        f"{'workload':13}{'target':14}{'phase':6}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'srv ms/r':>10}{'db ms/r':>9}{'ended ms/r':>11}{'wrk ms/r':>10}{'non200':>8}{'n':>3}"
    )
    for key in sorted({(r["workload"], r["target"], r["phase"]) for r in rows}):
        sel = [r for r in rows if (r["workload"], r["target"], r["phase"]) == key]
        m = {f: statistics.median(float(r.get(f, "nan")) for r in sel) for f in fields}
        m["non200"] = sum(float(r.get("non200", 0)) + float(r.get("errors", 0)) for r in sel)
        med[key] = m
        cpu = (
            f"{m['server_cpu_ms']:>10.2f}{m['db_cpu_ms']:>9.2f}{m['db_ended_cpu_ms']:>11.2f}"
            f"{m['wrk_cpu_ms']:>10.2f}"
            if key[2] == "load"
            else " " * 40
        )
        print(
            f"{key[0]:13}{key[1]:14}{key[2]:6}{m['rps']:>9.1f}{m['p50_ms']:>9.2f}"
            f"{m['p99_ms']:>9.2f}{cpu}{m['non200']:>8.0f}{len(sel):>3}"
        )

    def get(w: str, t: str, f: str, phase: str = "load") -> float:
        return med.get((w, t, phase), {}).get(f, float("nan"))

    print()
    if checks:
        same = sum(r["matched_equal"] == "True" and r["ids_equal"] == "True" for r in checks)
        compared = [k[len("matched_") :] for k in checks[0] if k.startswith("matched_")]
        compared = [t for t in compared if t != "equal"]
        scores_ok = all(r["scores_ok"] == "True" for r in checks)
        pages = sum(r["page_set_equal_pygeoapi"] == "True" for r in checks)
        print(
            f"filtered, checked before measuring: {same} of {len(checks)} queries with the same "
            f"numberMatched and ids (every match) on {', '.join(compared)}; every page feature "
            f"score > 50: {scores_ok}; measured pages with the same ids on pygeoapi: {pages}"
        )
    if "filtered" in {k[0] for k in med}:
        w = "filtered"
        for target in ("ours", "postgis", *PYGEOAPI_TABLES):
            if (w, target, "load") not in med:
                continue
            sel = [
                r for r in rows if (r["workload"], r["target"], r["phase"]) == (w, target, "load")
            ]
            print(
                f"filtered, {target}, load: rps {mmm([float(r['rps']) for r in sel], '{:.1f}')}, "
                f"p99 {mmm([float(r['p99_ms']) for r in sel], '{:.1f}')} ms"
            )
        print(
            f"filtered (score > 50, bbox, limit 100), c=8: embedded p99 "
            f"{get(w, 'ours', 'p99_ms'):.1f} ms, PostGIS p99 {get(w, 'postgis', 'p99_ms'):.1f} "
            "ms (target ≤ 50 ms)"
        )
        for py, relation in (
            ("pygeoapi-pg", "view"),
            ("pygeoapi-pgt", "table"),
            ("pygeoapi-pgs", "table, no parallel workers"),
        ):
            if (w, py, "load") not in med:
                continue
            print(
                f"  against pygeoapi PostgreSQL on the {relation}: embedded "
                f"{get(w, 'ours', 'rps') / get(w, py, 'rps'):.1f}×, PostGIS "
                f"{get(w, 'postgis', 'rps') / get(w, py, 'rps'):.1f}× (target ≥ 30×)"
            )
    for w in sorted({k[0] for k in med} - {"filtered"}):
        print(
            f"{w}: PostGIS p99 {get(w, 'postgis', 'p99_ms'):.1f} ms at c=8; PostGIS / pygeoapi "
            f"PostgreSQL {get(w, 'postgis', 'rps') / get(w, 'pygeoapi-pg', 'rps'):.1f}×; "
            f"two replicas / one {get(w, 'postgis-2', 'rps') / get(w, 'postgis', 'rps'):.2f}×; "
            f"embedded now / before {get(w, 'ours', 'rps') / get(w, 'before', 'rps'):.2f} "
            f"(warm p50 {get(w, 'ours', 'p50_ms', 'warm'):.2f} vs "
            f"{get(w, 'before', 'p50_ms', 'warm'):.2f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rn = sub.add_parser("run")
    rn.add_argument("--repeats", type=int, default=3)
    rn.add_argument("--load-s", type=int, default=15)
    rn.add_argument("--conc", type=int, default=8)
    rn.add_argument("--pass-cap-s", type=float, default=180.0)
    rn.add_argument("--workloads", default="features100,features")
    rn.add_argument("--before", default="HEAD", help="commit the embedded store is compared with")
    rn.add_argument("--targets", default=",".join(TARGETS))
    rn.add_argument(
        "--idle-wait-s",
        type=float,
        default=120.0,
        help="how long to wait for a ≥ 85 %% idle machine before each target (then measure anyway)",
    )
    rn.add_argument(
        "--checkout",
        help="run our servers from a worktree of this commit (default: this working tree)",
    )
    sm = sub.add_parser("summary")
    sm.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    if args.cmd == "run":
        unknown = set(args.workloads.split(",")) - set(WORKLOADS)
        if unknown:
            raise SystemExit(f"unknown workloads {sorted(unknown)}")
        out = run(
            args.repeats,
            args.load_s,
            args.conc,
            args.pass_cap_s,
            args.workloads.split(","),
            args.before,
            [t for t in args.targets.split(",") if t in TARGETS],
            args.idle_wait_s,
            args.checkout,
        )
        summary([out])
    else:
        summary(args.files)


if __name__ == "__main__":
    main()
