"""Provider registration read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Pure data, no imports: a broken or slow ``get_provider_info`` breaks or slows every ``airflow`` command.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_nairi import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-nairi",
        "name": "Nairi",
        "description": "Drive Nairi AI agents, their content and their org from Airflow DAGs.",
        "versions": [__version__],
    }
