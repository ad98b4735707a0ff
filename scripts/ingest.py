"""Ingest entry point: ``python scripts/ingest.py [build|validate|layers] ...``.

The same commands as the ``riskmap`` console script, for running from a checkout.
"""

from geo_service.cli import app

if __name__ == "__main__":
    app()
