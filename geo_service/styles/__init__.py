"""Styles for other map clients: a map as a MapLibre style, a layer as a QGIS style (QML).

Both are made from the same layer definitions (``layers/layers.toml``) as the map pages, so a
layer has one set of colours, classes and symbols wherever it is drawn. A style holds drawing
rules only, never data: its sources are the service's own tiles, read as the caller may.
"""
