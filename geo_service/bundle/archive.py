"""A bundle as a zip: its files, and ``manifest.json`` with each file's SHA-256, the build
id and the dates, written to a temporary file and renamed (a failed write leaves nothing);
``verify_bundle`` checks an archive against its manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import zipfile
from pathlib import Path

from geo_service.bundle.contents import Bundle
from geo_service.errors import RiskMapError

MANIFEST = "manifest.json"


class BundleError(RiskMapError):
    """An archive that is not a sound bundle (the problems named)."""


def manifest(bundle: Bundle) -> dict[str, object]:
    """The manifest: what the bundle is, and each file's SHA-256 and size."""
    return {
        "map": bundle.map_id,
        "lang": bundle.lang,
        "role": bundle.role.value,
        "build_id": bundle.build_id,
        "created": bundle.created,
        "files": {
            path: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for path, data in sorted(bundle.files.items())
        },
    }


def write_bundle(bundle: Bundle, out: Path) -> Path:
    """The zip of ``bundle`` at ``out`` (the files, then the manifest)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            made = dt.datetime.fromisoformat(bundle.created.replace("Z", "+00:00"))
            for path, data in sorted(bundle.files.items()):
                info = zipfile.ZipInfo(path, date_time=made.timetuple()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16  # readable by all once unzipped
                zf.writestr(info, data)
            text = json.dumps(manifest(bundle), indent=1, ensure_ascii=False)
            info = zipfile.ZipInfo(MANIFEST, date_time=made.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def verify_bundle(path: Path) -> dict[str, object]:
    """The manifest of the archive at ``path`` once every file matches it; ``BundleError``
    naming every file missing, added or changed otherwise."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: not a zip archive ({exc})") from exc
    with zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            raise BundleError(f"{path}: no {MANIFEST}")
        try:
            meta = json.loads(zf.read(MANIFEST))
            listed = meta["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path}: {MANIFEST} cannot be read ({exc})") from exc
        problems = [f"missing: {p}" for p in sorted(set(listed) - names)]
        problems += [f"not in the manifest: {p}" for p in sorted(names - set(listed) - {MANIFEST})]
        for name in sorted(set(listed) & names):
            digest = hashlib.sha256(zf.read(name)).hexdigest()
            if digest != listed[name]["sha256"]:
                problems.append(f"changed: {name}")
    if problems:
        raise BundleError(f"{path}: " + "; ".join(problems))
    return meta
