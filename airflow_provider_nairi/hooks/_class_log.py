"""One logger per class, not one per object, for objects a triggerer holds by the thousand.

Airflow's ``LoggingMixin.log`` builds a logger per object on first use (with structlog, about eight objects
the garbage collector tracks, kept as long as the object). A triggerer holding thousands of waiting triggers
walks all of them in every full collection (``docs/deployment.md``, sizing a triggerer), so the provider's
triggers and async hook share one logger per class: the same name (Airflow's, from the class), the same
lines; where a line goes (the trigger's own log) is decided by Airflow from the running trigger's context,
not by the logger object.
"""

from __future__ import annotations

from typing import Any

_LOGGERS: dict[type, Any] = {}


class ClassLogMixin:
    """``log`` is the first instance's Airflow logger, kept for every instance of the same class. Put it
    before Airflow's ``LoggingMixin`` base in the bases."""

    @property
    def log(self) -> Any:
        """The class's logger (Airflow's name for it: the class's module and name)."""
        logger = _LOGGERS.get(type(self))
        if logger is None:
            logger = _LOGGERS[type(self)] = super().log  # type: ignore[misc]
        return logger
