"""What the benchmarks share: an idle machine before measuring, the commit measured, a
process's resident memory, servers started and stopped by the process id this harness recorded,
and tables of median (min–max).

Why one module: every figure in ``bench/README.md`` is read the same way (the machine's idle
share before it, the commit and code it measured, medians over repeats), so every script must
take them the same way. The scripts run as ``python bench/<name>.py``, which puts this folder
on ``sys.path``; ``import benchlib`` needs nothing else.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
#: Server logs and generated scripts (git-ignored).
RUN = BENCH / ".run"


# --- an idle machine ---------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already counted in user/nice


def idle_share(seconds: float = 1.0) -> float:
    """Share of CPU time idle over ``seconds``, all cores together (``/proc/stat``)."""
    i0, t0 = _cpu_times()
    time.sleep(seconds)
    i1, t1 = _cpu_times()
    return (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def wait_for_idle(target: float = 0.80, limit_s: float = 60.0) -> float:
    """Wait (at most ``limit_s``) until the machine is at least ``target`` idle; the last share.

    The machine is shared: other work on it would be measured as ours. The share is returned
    so that every row of results can say how idle the machine was before it.
    """
    deadline = time.monotonic() + limit_s
    share = idle_share()
    while share < target and time.monotonic() < deadline:
        share = idle_share()
    if share < target:
        print(f"  machine only {share:.0%} idle after {limit_s:.0f} s; measuring anyway")
    return share


# --- what was measured -------------------------------------------------------------------------


def git_commit() -> str:
    """The checked-out commit, short (``unknown`` outside a checkout)."""
    try:
        return subprocess.run(
            ["git", "--no-optional-locks", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_head(paths: Sequence[str] = ("geo_service",)) -> str:
    """The commit, and whether ``paths`` differ from it (read-only: no index lock taken)."""
    head = git_commit()
    try:
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(ROOT), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return head
    return head + (f" (uncommitted changes in {', '.join(paths)})" if dirty else "")


def code_fingerprint(extra: Sequence[Path] = ()) -> str:
    """SHA-256 (12 hex) of ``geo_service/`` and ``extra`` files, to spot edits during a run."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "geo_service").rglob("*.py")) + list(extra):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


# --- tables ------------------------------------------------------------------------------------


def fmt(v: object) -> str:
    """A TSV cell: empty for None, four decimals for floats."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def mmm(values: Sequence[float], form: str = "{:.2f}") -> str:
    """``median (min–max)``, the way every figure in bench/README.md is written."""
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{form.format(med)} ({form.format(min(values))}–{form.format(max(values))})"


def print_table(lines: Sequence[Sequence[str]], title: str | None = None) -> None:
    """Rows of text, right-aligned in columns (the first row is the header)."""
    if title:
        print(title)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))


# --- memory ------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident memory of one process (``VmRSS`` of ``/proc/<pid>/status``), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Every descendant of ``pid``."""
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []
    out = list(kids)
    for k in kids:
        out += children(k)
    return out


def tree_rss_mib(pid: int) -> int:
    """Resident memory of a process and its descendants, MiB (a server started through a
    wrapper counts as itself)."""
    return sum(rss_kib(p) for p in [pid, *children(pid)]) // 1024


# --- servers -----------------------------------------------------------------------------------


def answers(port: int, path: str = "/", timeout_s: float = 2.0) -> int | None:
    """The status 127.0.0.1:``port`` answers ``path`` with, or None when it does not answer."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return None


def spawn(
    name: str,
    cmd: Sequence[str],
    *,
    cpu: int | None = 0,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` pinned to core ``cpu`` (``taskset``) without waiting for it.

    ``taskset`` execs the command, so the returned process id is the server's own: it can be
    signalled and its memory read directly. The server gets its own session so that stopping
    it ends whatever it started and nothing else. Its output goes to ``bench/.run/<name>.log``.
    """
    RUN.mkdir(parents=True, exist_ok=True)
    out = (RUN / f"{name}.log").open("ab")
    pinned = ["taskset", "-c", str(cpu), *cmd] if cpu is not None else list(cmd)
    try:
        return subprocess.Popen(
            pinned,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    finally:
        out.close()  # the child holds its own copy


def start_server(
    name: str,
    cmd: Sequence[str],
    port: int,
    *,
    cpu: int | None = 0,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    ready_path: str = "/",
    timeout_s: float = 60.0,
) -> subprocess.Popen[bytes]:
    """:func:`spawn` a server, returned once 127.0.0.1:``port`` answers ``ready_path``."""
    proc = spawn(name, cmd, cpu=cpu, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(port, ready_path) is not None:
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}); see {RUN / (name + '.log')}")
        time.sleep(0.05)
    stop_server(proc)
    raise SystemExit(f"{name} did not answer within {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Stop a server this harness started, and everything it started (its session)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


# --- a measurement in a child process ----------------------------------------------------------


def run_child(
    script: Path, args: Sequence[str], rss_cap_gib: float, timeout_s: float
) -> dict[str, object]:
    """Run ``script args`` in a fresh process, stopped if it passes the RSS cap or the
    timeout; its last line of output is the JSON of its figures."""
    import json
    import sys
    import tempfile

    cmd = [sys.executable, str(Path(script).resolve()), *args]
    cap_kib = int(rss_cap_gib * 1024 * 1024)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        seen_kib = 0
        reason = None
        while proc.poll() is None:
            seen_kib = max(seen_kib, rss_kib(proc.pid))
            if seen_kib > cap_kib:
                reason = f"RSS passed {rss_cap_gib:g} GiB"
            elif time.monotonic() > deadline:
                reason = f"took more than {timeout_s:g} s"
            if reason:
                proc.kill()
                proc.wait(timeout=60)
                return {"status": f"stopped: {reason}", "peak_rss_mb": seen_kib / 1024}
            time.sleep(0.25)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            text = err.read()
            print(f"  {' '.join(cmd)} failed ({proc.returncode}):\n{text}", file=sys.stderr)
            last = (text.strip().splitlines() or ["no message"])[-1]
            return {"status": f"error: {last}"}
        return {"status": "ok", **json.loads(out.read().strip().splitlines()[-1])}
