"""Reading builds: the embedded file store (GeoParquet on local disk)."""
