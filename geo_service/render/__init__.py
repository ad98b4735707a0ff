"""Encoders: features and rasters into the bytes a client asked for."""
