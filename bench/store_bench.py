"""The service on PostGIS against pygeoapi's PostgreSQL provider and the embedded store, with the
URL lists, data and load of ``api_bench.py`` (200 bbox queries over 100,000 incident points).

Why: the store issue asks for bbox items from PostGIS at c=8 with p99 ≤ 50 ms (limit 100), at
least 10× pygeoapi's PostgreSQL provider on the same database and queries, one and two replicas
measured under the same load (with where the time goes), and the embedded default no slower
than before.

How (``run``): a throw-away PostGIS cluster (``tests/postgis.py``) holds the bench build,
published by ``riskmap``'s own ``publish``; pygeoapi reads the same table through a view with
one column per property. Targets, each a fresh server per repeat, order rotated:

* ``ours`` — embedded store, this checkout; ``before`` — embedded store at ``--before`` (a git
  worktree of that commit, same virtual environment);
* ``postgis`` — one replica on the database; ``postgis-2`` — two replicas, the load split
  between them (two ``wrk`` of c/2 connections each, run together);
* ``pygeoapi-pg`` — pygeoapi with its PostgreSQL provider on the same database.

Servers run one uvicorn worker; a single server is pinned to core 0 and ``wrk`` to core 1, as in
``api_bench.py``; the second replica is pinned to core 1. PostgreSQL is not pinned. For each
load phase the CPU seconds of the servers, of PostgreSQL's processes and of ``wrk`` are read
from ``/proc`` and reported per request. Run from the repository root::

    .venv/bin/python bench/api_bench.py setup-peers    # once
    .venv/bin/python bench/api_bench.py make-data      # once
    .venv/bin/python bench/store_bench.py run --repeats 3 --before 70a0dbb
    .venv/bin/python bench/store_bench.py summary bench/results/store-*.tsv

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from benchlib import RESULTS, ROOT, RUN, git_commit, start_server, stop_server, wait_for_idle

sys.path.insert(0, str(ROOT))
from tests.postgis import cluster  # noqa: E402

PORTS = {
    "ours": 18293,
    "before": 18297,
    "postgis": 18294,
    "postgis-2": 18294,
    "pygeoapi-pg": 18296,
}
#: The second replica of ``postgis-2``.
SECOND = 18295
TARGETS = ["ours", "before", "postgis", "postgis-2", "pygeoapi-pg"]
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
        table: incidents_pg
        geom_field: geom
"""


# --- the database ------------------------------------------------------------------------------


def publish_bench(url: str) -> None:
    """The bench build in the database, and a view of it for pygeoapi (one column per
    property, as a table made for it would have)."""
    import psycopg

    from geo_service.store.postgis import publish

    publish(url, DATA / "build", "bench")
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT schema_name FROM riskmap.builds WHERE current").fetchone()[0]
        keys = conn.execute(
            f'SELECT json_object_keys(props) FROM "{schema}".incidents WHERE ord = 0'
        ).fetchall()
        columns = ", ".join(f"props->>'{k}' AS \"{k}\"" for (k,) in keys)
        conn.execute(
            f"CREATE OR REPLACE VIEW public.incidents_pg AS SELECT fid, {columns}, geom "
            f'FROM "{schema}".incidents'
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


# --- servers -----------------------------------------------------------------------------------


def _ours(port: int) -> list[str]:
    python = ROOT / ".venv" / "bin" / "python"
    uv = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return [str(python), "-m", "uvicorn", "--factory", "geo_service.api.app:create_app", *uv]


def worktree(ref: str) -> Path:
    """A checkout of ``ref`` beside the benchmark's other run files."""
    path = RUN / f"before-{ref}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), ref],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


def start(target: str, url: str, before: str) -> list[subprocess.Popen[bytes]]:
    """The target's server(s), each once it answers."""
    env = dict(os.environ, RISKMAP_BUILD_DIR=str(DATA / "build"))
    env.pop("RISKMAP_STORE_URL", None)
    if target == "pygeoapi-pg":
        extra = api_bench.pygeoapi_collection(
            "incidents_pg", "PostgreSQL", PYGEOAPI_PG.format(**_pg_fields(url))
        )
        return [api_bench.start_pygeoapi(PORTS[target], extra)]
    cwd = ROOT
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
    ports: list[int], paths: list[str], seconds: int, conc: int, servers: list[int], db: list[int]
) -> dict[str, float]:
    """The load split evenly over ``ports``; throughput summed, p99 the worst replica's; CPU
    seconds per request of the servers, PostgreSQL and wrk."""
    before_s, before_db = cpu_s(servers), cpu_s(db)
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
    after_s, after_db = cpu_s(servers), cpu_s(db)
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
        "wrk_cpu_ms": round(wrk_s * 1000 / requests, 3),
    }


def paths_of(target: str, workload: str) -> list[str]:
    """The workload's paths on the target (ours and pygeoapi's as in ``api_bench.py``)."""
    base = "pygeoapi" if target == "pygeoapi-pg" else "ours"
    paths = api_bench.urls(base, workload)
    if target == "pygeoapi-pg":
        paths = [p.replace("/incidents_gpkg/", "/incidents_pg/") for p in paths]
    return paths


def run(
    repeats: int,
    load_s: int,
    conc: int,
    cap_s: float,
    workloads: list[str],
    before: str,
    targets: list[str],
) -> Path:
    """Every workload and target, fresh servers per repeat, order rotated; TSV of results."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"store-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.tsv"
    commit = git_commit()
    with ExitStack() as stack, out.open("w") as fh:
        url = stack.enter_context(cluster())
        publish_bench(url)
        for workload in workloads:
            for rep in range(1, repeats + 1):
                order = targets[rep - 1 :] + targets[: rep - 1]
                for target in order:
                    idle = wait_for_idle(0.85, 120.0)
                    paths = paths_of(target, workload)
                    procs = start(target, url, before)
                    ports = [PORTS[target]] + ([SECOND] if target == "postgis-2" else [])
                    try:
                        rows = [("cold", one_pass(target, paths, cap_s, ports[0]))]
                        rows.append(("warm", one_pass(target, paths, cap_s, ports[0])))
                        servers = [p.pid for p in procs]
                        rows.append(
                            ("load", load(ports, paths, load_s, conc, servers, postgres_pids(url)))
                        )
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
                            **res,
                        }
                        fh.write("\t".join(f"{k}={v}" for k, v in fields.items()) + "\n")
                        fh.flush()
                        print(
                            f"{workload:12} {target:11} #{rep} {phase:4} rps={res['rps']:>8} "
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
    fields = ("rps", "p50_ms", "p99_ms", "server_cpu_ms", "db_cpu_ms", "wrk_cpu_ms")
    med: dict[tuple[str, str, str], dict[str, float]] = {}
    print(
        f"{'workload':13}{'target':12}{'phase':6}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'srv ms/r':>10}{'db ms/r':>9}{'wrk ms/r':>10}{'non200':>8}{'n':>3}"
    )
    for key in sorted({(r["workload"], r["target"], r["phase"]) for r in rows}):
        sel = [r for r in rows if (r["workload"], r["target"], r["phase"]) == key]
        m = {f: statistics.median(float(r.get(f, "nan")) for r in sel) for f in fields}
        m["non200"] = sum(float(r.get("non200", 0)) + float(r.get("errors", 0)) for r in sel)
        med[key] = m
        cpu = (
            f"{m['server_cpu_ms']:>10.2f}{m['db_cpu_ms']:>9.2f}{m['wrk_cpu_ms']:>10.2f}"
            if key[2] == "load"
            else " " * 29
        )
        print(
            f"{key[0]:13}{key[1]:12}{key[2]:6}{m['rps']:>9.1f}{m['p50_ms']:>9.2f}"
            f"{m['p99_ms']:>9.2f}{cpu}{m['non200']:>8.0f}{len(sel):>3}"
        )

    def get(w: str, t: str, f: str, phase: str = "load") -> float:
        return med.get((w, t, phase), {}).get(f, float("nan"))

    print()
    for w in sorted({k[0] for k in med}):
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
    sm = sub.add_parser("summary")
    sm.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    if args.cmd == "run":
        unknown = set(args.workloads.split(",")) - {"features", *SUBSETS}
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
        )
        summary([out])
    else:
        summary(args.files)


if __name__ == "__main__":
    main()
