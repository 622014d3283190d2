"""The video sensor moved to :mod:`airflow_provider_nairi.sensors.video`; this module keeps the former import
path working."""

from __future__ import annotations

from airflow_provider_nairi.sensors.video import NairiVideoReadySensor

__all__ = ["NairiVideoReadySensor"]
