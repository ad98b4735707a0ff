/*
 * Plane geometry on GeoJSON coordinates, for the taps the map answers itself: whether a
 * point lies inside a polygon (holes honoured) or a multipolygon.
 */

/** Whether [lon, lat] lies inside a closed ring (even-odd rule). */
function inRing(ring, x, y) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

/** Whether a GeoJSON Polygon or MultiPolygon contains the point (lon, lat). */
export function contains(geometry, lon, lat) {
  if (!geometry) { return false; }
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  return polygons.some((rings) => inRing(rings[0], lon, lat)
    && !rings.slice(1).some((hole) => inRing(hole, lon, lat)));
}
