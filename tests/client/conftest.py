"""Fixtures of the client-core tests: a config pointing at a fake host, a client whose waits are recorded."""

from __future__ import annotations

import pytest
import requests_mock as requests_mock_module
from client_helpers import BASE, KEY, Sleeps

from airflow_provider_nairi.client import ClientConfig, NairiClient


@pytest.fixture
def config() -> ClientConfig:
    return ClientConfig(api_key=KEY, base_url=BASE, max_retries=3, retry_max_wait=30, retry_total_timeout=120)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(config: ClientConfig, sleeps: Sleeps) -> NairiClient:
    return NairiClient(config, sleep=sleeps)


@pytest.fixture
def api(requests_mock: requests_mock_module.Mocker) -> requests_mock_module.Mocker:
    return requests_mock
