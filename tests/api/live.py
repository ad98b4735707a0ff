"""A real server on 127.0.0.1 for clients written by others (``riskmap serve`` in a process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

#: Seconds a server may take to answer from a new build: it polls for one once a second and
#: loads it in a low-priority thread, so on a busy shared machine it takes longer than the
#: second or so it takes otherwise; the bound only ends a test that would wait forever (how
#: soon a build is served is timed by ``bench/load_bench.py swap``).
SWITCH_S = 90.0


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(build_dir: Path, **settings: str) -> Iterator[str]:
    """``riskmap serve`` on a free loopback port; yields its URL, stops it afterwards.
    ``settings`` are further ``RISKMAP_*`` settings (``maps_file="…"``)."""
    port = free_port()
    riskmap = Path(sys.executable).with_name("riskmap")
    env = {**os.environ, "RISKMAP_BUILD_DIR": str(build_dir)}
    env |= {f"RISKMAP_{k.upper()}": v for k, v in settings.items()}
    proc = subprocess.Popen(
        [str(riskmap), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):  # at most ~30 s
            if proc.poll() is not None:
                pytest.fail(f"riskmap serve exited with {proc.returncode}")
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not answer within 30 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
