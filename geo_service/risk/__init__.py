"""The risk model: one module per factor, a combiner, and the layers derived from them.

``FACTORS`` is the registry: a factor is a module with a parameter model and ``compute``, a
line here and a section in ``layers/risk.toml``; ``combine.py`` and the layers need nothing else.
"""

from __future__ import annotations

from geo_service.risk.base import RiskFactor
from geo_service.risk.concession_pressure import ConcessionPressure
from geo_service.risk.incident_intensity import IncidentIntensity
from geo_service.risk.tailings_exposure import TailingsExposure

FACTORS: dict[str, RiskFactor] = {
    f.name: f for f in (ConcessionPressure(), TailingsExposure(), IncidentIntensity())
}

__all__ = ["FACTORS"]
