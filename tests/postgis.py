"""A throw-away PostgreSQL cluster with PostGIS for the tests: created in a temporary folder,
listening only on a Unix socket in it, removed afterwards.

Debian's ``postgresql-15-postgis-3`` is installed by ``make test``. As root the cluster runs as
the ``postgres`` system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

#: Superuser of the throw-away cluster (and its one database).
USER = "riskmap"
PORT = 5433


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run 'make test' (it installs it)")
    return Path(found[-1]).parent


def _run(args: list[str], owner: str | None) -> None:
    command = ["runuser", "-u", owner, "--", *args] if owner else args
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


@contextmanager
def cluster() -> Iterator[str]:
    """A running cluster with PostGIS in database ``riskmap``; yields its connection URL."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="riskmap-pg-"))
    owner = "postgres" if os.geteuid() == 0 else None
    data = root / "data"
    try:
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            owner,
        )
        options = f"-c listen_addresses='' -k {root} -p {PORT} -c fsync=off"
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(root / "log"),
                "start",
            ],
            owner,
        )
        url = f"postgresql://{USER}@/postgres?host={root}&port={PORT}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {USER}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        url = f"postgresql://{USER}@/{USER}?host={root}&port={PORT}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        yield url
    finally:
        if (data / "postmaster.pid").exists():
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner)
        shutil.rmtree(root, ignore_errors=True)


def database(url: str, name: str) -> str:
    """A new, empty database with PostGIS in the cluster of ``url``; its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    there = re.sub(r"@/[^?]+", f"@/{name}", url)
    with psycopg.connect(there, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    return there
