"""Offline field bundles: one map's page, data, tiles and credits in a zip that opens from
``file://`` with no network (``riskmap bundle``). ``contents`` gathers what a caller of a
role sees through the API itself, ``script`` builds the page's script, ``archive`` writes
and verifies the zip and its manifest."""

from geo_service.bundle.archive import BundleError, verify_bundle, write_bundle
from geo_service.bundle.contents import Bundle, gather

__all__ = ["Bundle", "BundleError", "gather", "verify_bundle", "write_bundle"]
