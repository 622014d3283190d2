"""The pure Nairi client core (no Airflow): config, protocol, the endpoint methods and the sync client.

``AsyncNairiClient`` lives in :mod:`airflow_provider_nairi.client.aio` and is not imported here: aiohttp is
slow to import and DAG files must not pay for it.
"""

from airflow_provider_nairi.client.api import NairiApi
from airflow_provider_nairi.client.config import ClientConfig, connection_form
from airflow_provider_nairi.client.protocol import RateLimit
from airflow_provider_nairi.client.sync import NairiClient

__all__ = ["ClientConfig", "NairiApi", "NairiClient", "RateLimit", "connection_form"]
