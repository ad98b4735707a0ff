"""A map as one PNG, drawn on the server: for print, slides and social media.

The same layers as the page, composited in Web Mercator: the outside basemap's tiles when they
answer within a second, else the build's offline basemap; the risk surface read from the COG
for exactly this view; communities, incidents, mine sites and dams from the layer tables, in
the page's shapes and colours; then the title, a legend, a scale bar and the attribution
(crediting only what was drawn), in the page's language and sized to the picture.
"""

from __future__ import annotations

import io
import math
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont
from rio_tiler.io import Reader

from geo_service.render import png, symbols

WORLD = 2 * math.pi * 6378137.0
HALF = WORLD / 2
MAX_LAT = 85.05112877980659
#: Outside tiles must all arrive within this many seconds, or the offline basemap is drawn.
BASEMAP_TIMEOUT_S = 1.0
USER_AGENT = "diamond-risk-map static map (+https://github.com/)"
#: After the outside tiles failed, they are not asked for again for this long: a server with
#: no route to them draws the offline basemap at once instead of waiting on every picture.
RETRY_OUTSIDE_S = 300.0
_outside_down_until: dict[str, float] = {}
#: The offline basemap's colours: the sea, and the fill and outline of land and lakes, and
#: rivers (also the MapLibre style's basemap).
OFFLINE_SEA = "#c6dbe8"
OFFLINE_FILLS = {"land": ("#f2efe9", "#9e9e9e"), "lake": ("#c6dbe8", "#8fb8cf")}
OFFLINE_RIVER = "#8fb8cf"
#: The risk surface is drawn this opaque over the basemap (as on the page).
SURFACE_OPACITY = 0.75


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

    @property
    def zoom(self) -> float:
        """The web map zoom whose 256-pixel tiles have this picture's resolution."""
        return math.log2(WORLD / 256 / self.res)

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


#: Fonts with every Latin letter of French and Portuguese (é, ç, ã …), first found wins
#: (``{}``: nothing, or ``-Bold``).
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans{}.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans{}.ttf",
)


@cache
def _font(size: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    candidates = list(FONTS)
    try:  # matplotlib, when installed, ships DejaVu Sans
        import matplotlib

        candidates.append(
            str(Path(matplotlib.__file__).parent / "mpl-data/fonts/ttf/DejaVuSans{}.ttf")
        )
    except ImportError:
        pass
    for pattern in candidates:
        path = pattern.format("-Bold" if bold else "")
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)  # Pillow's own: no accented letters


def outside_basemap(frame: Frame, template: str) -> Image.Image | None:
    """The frame from XYZ tiles, or None when any tile fails or is late (then, for
    ``RETRY_OUTSIDE_S``, None at once)."""
    z = max(0, min(18, round(math.log2(WORLD / (256 * frame.res)))))
    size = WORLD / 2**z
    x0 = int((frame.west + HALF) // size)
    x1 = int((frame.east + HALF) // size)
    y0 = int((HALF - frame.north) // size)
    y1 = int((HALF - frame.south) // size)
    tiles = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1) if 0 <= y < 2**z]
    if not tiles or len(tiles) > 64 or time.monotonic() < _outside_down_until.get(template, 0):
        return None
    image = _outside_tiles(frame, template, z, (x0, y0, x1, y1), tiles)
    if image is None:
        _outside_down_until[template] = time.monotonic() + RETRY_OUTSIDE_S
    return image


def _outside_tiles(
    frame: Frame,
    template: str,
    z: int,
    span: tuple[int, int, int, int],
    tiles: list[tuple[int, int]],
) -> Image.Image | None:
    x0, y0, x1, y1 = span
    size = WORLD / 2**z

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
    image = Image.new("RGBA", (frame.width, frame.height), OFFLINE_SEA)
    draw = ImageDraw.Draw(image)
    style = OFFLINE_FILLS
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
                    draw.line(list(zip(px, py, strict=True)), fill=OFFLINE_RIVER, width=1)
    return image


@dataclass(frozen=True)
class RasterLayer:
    """A raster of the build drawn under the marks: its COG, drawn as its tiles are."""

    cog: Path
    render: Callable[[Any], bytes] = png.render
    opacity: float = SURFACE_OPACITY
    #: Scores are smooth (bilinear); counts of people per cell are not (nearest).
    resampling: str = "bilinear"


def raster_image(frame: Frame, layer: RasterLayer) -> Image.Image:
    """A raster for exactly this frame, in its tiles' colours."""
    with Reader(str(layer.cog)) as reader:
        data = reader.part(
            (frame.west, frame.south, frame.east, frame.north),
            bounds_crs="EPSG:3857",
            dst_crs="EPSG:3857",
            width=frame.width,
            height=frame.height,
            resampling_method=layer.resampling,
        )
    rgba = Image.open(io.BytesIO(layer.render(data))).convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) * layer.opacity
    rgba.putalpha(Image.fromarray(alpha.astype(np.uint8)))
    return rgba


@dataclass(frozen=True)
class Marks:
    """Points of one layer as the page draws them: a shape per layer, a fill per point."""

    lon: np.ndarray
    lat: np.ndarray
    fills: list[str]
    radius: float
    outline: str = "#111111"
    #: A symbol of ``render.symbols``: circle, triangle, diamond, square, hexagon.
    shape: str = "circle"
    #: A ring of this colour under each mark, so it stands apart from a surface of its colour.
    halo: str | None = None
    #: Points drawn with a dashed outline (no data).
    dashed: list[bool] | None = None
    #: Points drawn hollow: a thick ring of their colour round a white centre (low confidence).
    hollow: list[bool] | None = None
    #: Footprint radius in metres around each point (drawn as a dotted circle), if any.
    rings_m: list[float] | None = None


@dataclass(frozen=True)
class LegendItem:
    """One line of the picture's legend: a label and the mark drawn beside it, or a layer's
    heading (no mark)."""

    label: str
    fill: str = "#ffffff"
    shape: str = "circle"
    dashed: bool = False
    hollow: bool = False
    heading: bool = False
    #: The risk scale's colour ramp and its tick labels, drawn under this line.
    ramp: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Label:
    """A place's name, written beside its point."""

    lon: float
    lat: float
    text: str


def labels(image: Image.Image, frame: Frame, places: list[Label]) -> None:
    """Names beside their points, in a white halo, most important first: a name that would
    cover one already written is left out."""
    draw = ImageDraw.Draw(image)
    scale = mark_scale(frame)
    font = _font(max(9, round(13 * scale)))
    taken: list[tuple[float, float, float, float]] = []
    for place in places:
        px, py = frame.pixels(np.array([place.lon]), np.array([place.lat]))
        x, y = float(px[0]) + 7 * scale, float(py[0])
        left, top, right, bottom = draw.textbbox((x, y), place.text, font=font, anchor="lm")
        box = (left - 2, top - 2, right + 2, bottom + 2)
        outside = box[0] < 0 or box[1] < 0 or box[2] > frame.width or box[3] > frame.height
        if outside or any(
            box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken
        ):
            continue
        taken.append(box)
        draw.text(
            (x, y),
            place.text,
            font=font,
            fill="#111",
            anchor="lm",
            stroke_width=2,
            stroke_fill="#ffffff",
        )


def _hollow(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, colour: str) -> None:
    """A ring of ``colour`` round a white centre (low confidence)."""
    width = max(2, round(r * 0.55))
    draw.ellipse((x - r, y - r, x + r, y + r), fill="#ffffff", outline=colour, width=width)


def _shape(
    draw: ImageDraw.ImageDraw, shape: str, x: float, y: float, r: float, fill: str, outline: str
) -> None:
    polygon = symbols.outline(shape, x, y, r)
    if polygon is None:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=outline)
    else:
        draw.polygon(polygon, fill=fill, outline=outline)


def _dashed_circle(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, colour: str) -> None:
    steps = max(8, int(r / 2))
    for k in range(steps):
        start = k * 360 / steps
        draw.arc((x - r, y - r, x + r, y + r), start, start + 180 / steps, fill=colour, width=1)


def mark_scale(frame: Frame) -> float:
    """How big marks are drawn in this picture: as on a screen at 1200 × 800, smaller in a
    preview (a 360 px picture's dots would otherwise cover it)."""
    return max(0.5, min(min(frame.width / 1200, frame.height / 800), 1.6))


def marks(image: Image.Image, frame: Frame, layer: Marks) -> None:
    """One layer's points, outlined, in its shape (halos first, so none covers a neighbour)."""
    draw = ImageDraw.Draw(image)
    px, py = frame.pixels(layer.lon, layer.lat)
    if layer.rings_m is not None:
        lat = float(np.mean(layer.lat)) if len(layer.lat) else 0.0
        ground = frame.res * math.cos(math.radians(lat))
        for x, y, radius in zip(px, py, layer.rings_m, strict=True):
            if radius and radius / ground >= 3:
                _dashed_circle(draw, x, y, radius / ground, layer.outline)
    r = layer.radius * mark_scale(frame)
    if layer.halo is not None:
        h = r + max(1.0, 2 * mark_scale(frame))
        for x, y in zip(px, py, strict=True):
            draw.ellipse((x - h, y - h, x + h, y + h), fill=layer.halo)
    dashed = layer.dashed or [False] * len(layer.fills)
    hollow = layer.hollow or [False] * len(layer.fills)
    for x, y, fill, dash, ring in zip(px, py, layer.fills, dashed, hollow, strict=True):
        if dash:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
            _dashed_circle(draw, x, y, r, layer.outline)
        elif ring:
            _hollow(draw, x, y, r, fill)
        else:
            _shape(draw, layer.shape, x, y, r, fill, layer.outline)


def areas(
    image: Image.Image, frame: Frame, polygons: list[Any], fills: list[str], opacity: float = 0.45
) -> None:
    """Polygons (restricted rows, known to the public only by their cell), translucent, with
    a dark outline."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    alpha = int(255 * opacity)
    for geom, fill in zip(polygons, fills, strict=True):
        parts = getattr(geom, "geoms", [geom])
        for part in parts:
            xy = np.asarray(part.exterior.coords)
            px, py = frame.pixels(xy[:, 0], xy[:, 1])
            r, g, b = ImageColor.getrgb(fill)[:3]
            draw.polygon(list(zip(px, py, strict=True)), fill=(r, g, b, alpha))
            draw.line(list(zip(px, py, strict=True)), fill="#111111", width=1)
    image.alpha_composite(overlay)


def _nice(metres: float) -> float:
    exponent = 10 ** math.floor(math.log10(metres))
    return max(m * exponent for m in (1, 2, 5) if m * exponent <= metres)


#: The picture's legend needs this much room: smaller pictures (previews) leave it out, and
#: say what they show in their title and attribution only.
LEGEND_MIN_SIZE = (560, 360)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` (a long word keeps its own line)."""
    lines, line = [], ""
    for word in text.split(" "):
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    return lines


def furniture(
    image: Image.Image,
    frame: Frame,
    title: str,
    legend: list[LegendItem],
    attribution: str,
    subtitle: str | None = None,
) -> None:
    """Title (and a line under it), legend, scale bar and attribution, sized to the picture.

    Type scales with the picture (a 360 × 240 preview gets small, still readable type, a
    print-size picture larger), and below ``LEGEND_MIN_SIZE`` the legend is left out rather
    than covering the map.
    """
    draw = ImageDraw.Draw(image)
    w, h = frame.width, frame.height
    scale = max(0.45, min(min(w / 1200, h / 800), 1.6))
    big, small = _font(max(11, round(22 * scale))), _font(max(9, round(14 * scale)))
    bold = _font(max(9, round(14 * scale)), bold=True)
    line_h = max(11, round(18 * scale))
    pad = max(4, round(10 * scale))
    # Title, top left, wrapped to the width (two lines at most), and the subtitle.
    lines = [(ln, big) for ln in _wrap(draw, title, big, w - 4 * pad)[:2]]
    if subtitle:
        lines += [(ln, small) for ln in _wrap(draw, subtitle, small, w - 4 * pad)[:1]]
    heights = [draw.textbbox((0, 0), ln, font=f)[3] for ln, f in lines]
    width = max(draw.textlength(ln, font=f) for ln, f in lines)
    box_h = sum(heights) + pad * (len(lines) + 1)
    draw.rectangle((pad, pad, 3 * pad + width, pad + box_h), fill=(255, 255, 255, 235))
    y = 2 * pad
    for (ln, f), lh in zip(lines, heights, strict=True):
        draw.text((2 * pad, y), ln, font=f, fill="#111" if f is big else "#333")
        y += lh + pad
    # Attribution, bottom strip, wrapped to the width.
    att = _wrap(draw, attribution, small, w - 2 * pad)
    strip = pad + line_h * len(att)
    draw.rectangle((0, h - strip, w, h), fill=(255, 255, 255, 225))
    for i, text in enumerate(att):
        draw.text((pad, h - strip + pad // 2 + line_h * i), text, font=small, fill="#333")
    bottom = h - strip - pad
    # Scale bar at the centre's latitude, bottom right above the attribution.
    lat = float(lonlat(np.array([0.0]), np.array([(frame.south + frame.north) / 2]))[1][0])
    ground = frame.res * math.cos(math.radians(lat))
    length = _nice(ground * 150 * scale)
    px = length / ground
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    x0, y0 = w - 2 * pad - px, bottom - pad
    draw.rectangle((x0 - pad, y0 - line_h - pad, w - pad, y0 + pad), fill=(255, 255, 255, 235))
    draw.line((x0, y0, x0 + px, y0), fill="#111", width=max(2, round(3 * scale)))
    draw.text((x0, y0 - line_h - 2), label, font=small, fill="#111")
    # Legend, bottom left, only where there is room for it: a heading per layer, its marks.
    if w < LEGEND_MIN_SIZE[0] or h < LEGEND_MIN_SIZE[1] or not legend:
        return
    r = max(4, round(6 * scale))
    ramp_w = round(220 * scale)
    col = max(
        draw.textlength(item.label, font=bold if item.heading else small)
        + (0 if item.heading else 3 * r + pad)
        for item in legend
    )
    if any(item.ramp for item in legend):
        col = max(col, ramp_w + pad)
    rows = sum(3 if item.ramp else 1 for item in legend)
    top = bottom - pad - rows * line_h
    draw.rectangle((pad, top - pad, 3 * pad + col, bottom), fill=(255, 255, 255, 235))
    y = top
    x = 2 * pad
    for item in legend:
        cy = y + line_h / 2
        if item.heading:
            draw.text((x, y), item.label, font=bold, fill="#111")
        elif item.dashed:
            draw.ellipse((x, cy - r, x + 2 * r, cy + r), fill=item.fill)
            _dashed_circle(draw, x + r, cy, r, "#111")
        elif item.hollow:
            _hollow(draw, x + r, cy, r, item.fill)
        else:
            _shape(draw, item.shape, x + r, cy, r, item.fill, "#111")
        if not item.heading:
            draw.text((x + 3 * r, y), item.label, font=small, fill="#111")
        y += line_h
        if item.ramp:
            for i in range(ramp_w):
                draw.line((x + i, y, x + i, y + r), fill=png._lut_colour(i / (ramp_w - 1)))
            y += r + 2
            ticks = item.ramp
            for i, tick in enumerate(ticks):
                tw = draw.textlength(tick, font=small)
                tx = x + ramp_w * i / max(len(ticks) - 1, 1) - tw / 2
                draw.text((min(max(tx, x), x + ramp_w - tw), y), tick, font=small, fill="#333")
            y += line_h * 2 - r - 2


def compose(
    frame: Frame,
    basemap_template: str,
    offline: Callable[[], list[dict[str, Any]]],
    rasters: list[RasterLayer],
    layers: list[Marks | tuple[list[Any], list[str]]],
    title: str,
    legend: list[LegendItem],
    credits: Callable[[bool], str],
    subtitle: str | None = None,
    places: list[Label] | None = None,
) -> bytes:
    """The whole picture as PNG bytes.

    ``credits(outside)`` is the attribution, told whether the outside basemap was drawn (its
    tiles all arrived in time): only what is in the picture is credited.
    """
    outside = outside_basemap(frame, basemap_template)
    base = outside or offline_basemap(frame, offline())
    image = base.convert("RGBA")
    for raster in rasters:
        image.alpha_composite(raster_image(frame, raster))
    for layer in layers:
        if isinstance(layer, Marks):
            marks(image, frame, layer)
        else:
            areas(image, frame, *layer)
    labels(image, frame, places or [])
    furniture(image, frame, title, legend, credits(outside is not None), subtitle)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", compress_level=3)
    return out.getvalue()
