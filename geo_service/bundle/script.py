"""The script of an offline page: the live page's modules and the PMTiles reader in one
classic script (``static/offline/offline.js``, bundled by esbuild from npm), since browsers
load no ES module from ``file://``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from geo_service.errors import BuildError

ENTRY = Path(__file__).parent.parent / "maps" / "static" / "offline" / "offline.js"


def offline_script(node_modules: Path) -> bytes:
    """The page's script, bundled and minified by esbuild (installed at set-up from npm)."""
    esbuild = node_modules / ".bin" / "esbuild"
    if not esbuild.exists():
        raise BuildError(f"{esbuild} is missing: run 'make run' (or 'npm ci') to install it")
    done = subprocess.run(
        [
            str(esbuild),
            str(ENTRY),
            "--bundle",
            "--format=iife",
            "--minify",
            "--target=es2020",
            "--log-level=error",
        ],
        capture_output=True,
        env={**os.environ, "NODE_PATH": str(node_modules)},
        check=False,
        timeout=120,
    )
    if done.returncode:
        raise BuildError(f"esbuild could not bundle {ENTRY}: {done.stderr.decode()[:2000]}")
    return done.stdout
