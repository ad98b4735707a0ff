"""A map as one PNG, drawn on the server: for print, slides and social media.

The same layers as the page, composited in Web Mercator: the outside basemap's tiles when they
answer within a second, else the build's offline basemap; the risk surface read from the COG
for exactly this view; communities and incidents from the layer tables; then the title, a
legend, a scale bar and the attribution, in the page's language.
"""

from __future__ import annotations

import io
import math
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rio_tiler.io import Reader

from geo_service.render import png

WORLD = 2 * math.pi * 6378137.0
HALF = WORLD / 2
MAX_LAT = 85.05112877980659
#: Outside tiles must all arrive within this many seconds, or the offline basemap is drawn.
BASEMAP_TIMEOUT_S = 1.0
USER_AGENT = "diamond-risk-map static map (+https://github.com/)"


@dataclass(frozen=True)
class Frame:
    """The picture's extent in EPSG:3857 and its size in pixels."""

    west: float
    south: float
    east: float
    north: float
    width: int
    height: int

    @property
    def res(self) -> float:
        """Mercator metres per pixel."""
        return (self.east - self.west) / self.width

    def pixels(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel columns and rows of lon/lat points."""
        x, y = mercator(lon, lat)
        return (x - self.west) / self.res, (self.north - y) / self.res

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        lon0, lat0 = lonlat(np.array([self.west]), np.array([self.south]))
        lon1, lat1 = lonlat(np.array([self.east]), np.array([self.north]))
        return float(lon0[0]), float(lat0[0]), float(lon1[0]), float(lat1[0])


def mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spherical Web Mercator, as tiles use it."""
    lat = np.clip(np.asarray(lat, dtype=float), -MAX_LAT, MAX_LAT)
    x = np.radians(np.asarray(lon, dtype=float)) * 6378137.0
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * 6378137.0
    return x, y


def lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``mercator``."""
    return np.degrees(x / 6378137.0), np.degrees(np.arctan(np.sinh(y / 6378137.0)))


def frame_for(bbox: tuple[float, float, float, float], width: int, height: int) -> Frame:
    """The bbox widened (about its centre) to the picture's proportions."""
    (x0, x1), (y0, y1) = mercator(np.array([bbox[0], bbox[2]]), np.array([bbox[1], bbox[3]]))
    res = max((x1 - x0) / width, (y1 - y0) / height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Frame(
        cx - res * width / 2,
        cy - res * height / 2,
        cx + res * width / 2,
        cy + res * height / 2,
        width,
        height,
    )


#: Fonts with every Latin letter of French and Portuguese (é, ç, ã …), first found wins.
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    candidates = list(FONTS)
    try:  # matplotlib, when installed, ships DejaVu Sans
        import matplotlib

        candidates.append(
            str(Path(matplotlib.__file__).parent / "mpl-data/fonts/ttf/DejaVuSans.ttf")
        )
    except ImportError:
        pass
    for path in candidates:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)  # Pillow's own: no accented letters


def outside_basemap(frame: Frame, template: str) -> Image.Image | None:
    """The frame from XYZ tiles, or None when any tile fails or is late."""
    z = max(0, min(18, round(math.log2(WORLD / (256 * frame.res)))))
    size = WORLD / 2**z
    x0 = int((frame.west + HALF) // size)
    x1 = int((frame.east + HALF) // size)
    y0 = int((HALF - frame.north) // size)
    y1 = int((HALF - frame.south) // size)
    tiles = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1) if 0 <= y < 2**z]
    if not tiles or len(tiles) > 64:
        return None

    def fetch(xy: tuple[int, int]) -> bytes:
        url = template.format(z=z, x=xy[0] % 2**z, y=xy[1])
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(req, timeout=BASEMAP_TIMEOUT_S) as r:
            return r.read()

    pool = ThreadPoolExecutor(max_workers=8)
    futures = {xy: pool.submit(fetch, xy) for xy in tiles}
    done, late = wait(futures.values(), timeout=BASEMAP_TIMEOUT_S)
    pool.shutdown(wait=False, cancel_futures=True)
    if late or any(f.exception() for f in done):
        return None
    mosaic = Image.new("RGBA", ((x1 - x0 + 1) * 256, (y1 - y0 + 1) * 256))
    for (x, y), f in futures.items():
        mosaic.paste(
            Image.open(io.BytesIO(f.result())).convert("RGBA"), ((x - x0) * 256, (y - y0) * 256)
        )
    scale = 256 / size
    left = (frame.west + HALF - x0 * size) * scale
    top = (HALF - frame.north - y0 * size) * scale
    box = (
        left,
        top,
        left + frame.width * frame.res * scale,
        top + frame.height * frame.res * scale,
    )
    return mosaic.resize((frame.width, frame.height), Image.Resampling.BILINEAR, box=box)


def offline_basemap(frame: Frame, features: list[dict[str, Any]]) -> Image.Image:
    """The build's Natural Earth land, lakes and rivers, drawn for the frame."""
    image = Image.new("RGBA", (frame.width, frame.height), "#c6dbe8")
    draw = ImageDraw.Draw(image)
    style = {"land": ("#f2efe9", "#9e9e9e"), "lake": ("#c6dbe8", "#8fb8cf")}
    for kind in ("land", "lake", "river"):
        for f in features:
            if f["properties"]["kind"] != kind:
                continue
            g = f["geometry"]
            if g["type"] in ("Polygon", "MultiPolygon"):
                polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
                for rings in polys:
                    for i, ring in enumerate(rings):
                        xy = np.asarray(ring, dtype=float)
                        px, py = frame.pixels(xy[:, 0], xy[:, 1])
                        fill = style[kind][0] if i == 0 else style["lake"][0]
                        draw.polygon(
                            list(zip(px, py, strict=True)), fill=fill, outline=style[kind][1]
                        )
            elif g["type"] in ("LineString", "MultiLineString"):
                lines = [g["coordinates"]] if g["type"] == "LineString" else g["coordinates"]
                for line in lines:
                    xy = np.asarray(line, dtype=float)
                    px, py = frame.pixels(xy[:, 0], xy[:, 1])
                    draw.line(list(zip(px, py, strict=True)), fill="#8fb8cf", width=1)
    return image


def surface(frame: Frame, cog: Path, opacity: float = 0.75) -> Image.Image:
    """The risk surface for exactly this frame, in the tiles' colours."""
    with Reader(str(cog)) as reader:
        data = reader.part(
            (frame.west, frame.south, frame.east, frame.north),
            bounds_crs="EPSG:3857",
            dst_crs="EPSG:3857",
            width=frame.width,
            height=frame.height,
            resampling_method="bilinear",
        )
    rgba = Image.open(io.BytesIO(png.render(data))).convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) * opacity
    rgba.putalpha(Image.fromarray(alpha.astype(np.uint8)))
    return rgba


def points(
    image: Image.Image,
    frame: Frame,
    lon: np.ndarray,
    lat: np.ndarray,
    colours: list[str],
    radius: int,
    outline: str,
) -> None:
    """Dots for points, outlined."""
    draw = ImageDraw.Draw(image)
    px, py = frame.pixels(lon, lat)
    for x, y, c in zip(px, py, colours, strict=True):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=c, outline=outline)


def _nice(metres: float) -> float:
    exponent = 10 ** math.floor(math.log10(metres))
    return max(m * exponent for m in (1, 2, 5) if m * exponent <= metres)


def furniture(
    image: Image.Image,
    frame: Frame,
    title: str,
    legend: list[tuple[str, str]],
    ramp_label: str | None,
    attribution: str,
) -> None:
    """Title, legend, scale bar and attribution."""
    draw = ImageDraw.Draw(image)
    big, small = _font(22), _font(14)
    w, h = frame.width, frame.height
    tb = draw.textbbox((0, 0), title, font=big)
    draw.rectangle((10, 10, 30 + tb[2], 26 + tb[3]), fill=(255, 255, 255, 235))
    draw.text((20, 16), title, font=big, fill="#111")
    # Legend, bottom left.
    rows = len(legend) + (2 if ramp_label else 0)
    top = h - 58 - rows * 20
    draw.rectangle((10, top - 8, 250, h - 54), fill=(255, 255, 255, 235))
    y = top
    if ramp_label:
        draw.text((18, y), ramp_label, font=small, fill="#111")
        y += 18
        for i in range(200):
            r, g, b = png._lut_colour(i / 199)
            draw.line((18 + i, y, 18 + i, y + 10), fill=(r, g, b))
        y += 22
    for label, colour in legend:
        draw.ellipse((18, y + 2, 30, y + 14), fill=colour, outline="#000")
        draw.text((38, y), label, font=small, fill="#111")
        y += 20
    # Scale bar at the centre's latitude, bottom right above the attribution.
    lat = float(lonlat(np.array([0.0]), np.array([(frame.south + frame.north) / 2]))[1][0])
    ground = frame.res * math.cos(math.radians(lat))
    length = _nice(ground * 150)
    px = length / ground
    x0, y0 = w - 20 - px, h - 66
    draw.rectangle((x0 - 6, y0 - 20, w - 14, y0 + 8), fill=(255, 255, 255, 235))
    draw.line((x0, y0, x0 + px, y0), fill="#111", width=3)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    draw.text((x0, y0 - 18), label, font=small, fill="#111")
    # Attribution, bottom strip, wrapped to the width.
    lines, line = [], ""
    for word in attribution.split(" "):
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=small) > w - 16:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    strip = 8 + 18 * len(lines)
    draw.rectangle((0, h - strip, w, h), fill=(255, 255, 255, 220))
    for i, text in enumerate(lines):
        draw.text((8, h - strip + 4 + 18 * i), text, font=small, fill="#333")


def compose(
    frame: Frame,
    basemap_template: str,
    offline: Callable[[], list[dict[str, Any]]],
    cog: Path | None,
    layers: list[tuple[np.ndarray, np.ndarray, list[str], int, str]],
    title: str,
    legend: list[tuple[str, str]],
    ramp_label: str | None,
    attribution: str,
) -> bytes:
    """The whole picture as PNG bytes."""
    base = outside_basemap(frame, basemap_template) or offline_basemap(frame, offline())
    image = base.convert("RGBA")
    if cog is not None:
        image.alpha_composite(surface(frame, cog))
    for lon, lat, colours, radius, outline in layers:
        points(image, frame, lon, lat, colours, radius, outline)
    furniture(image, frame, title, legend, ramp_label, attribution)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", compress_level=3)
    return out.getvalue()
