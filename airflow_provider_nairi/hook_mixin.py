"""``self.hook`` for every operator and sensor of the provider, built once and only at execute time."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_nairi.client.sync import NairiClient
    from airflow_provider_nairi.hooks.nairi import NairiHook


class NairiHookMixin:
    """``self.hook``: the :class:`~airflow_provider_nairi.hooks.nairi.NairiHook` of ``self.conn_id``, and
    ``self.api``: its client, the one API object (``self.api.get_conversation(id)``...).

    The hook (and with it ``requests`` and the client) is imported and built on first use, at execute time:
    parsing a DAG file never imports an HTTP library, reads a connection or opens a socket.
    """

    conn_id: str

    @cached_property
    def hook(self) -> NairiHook:
        from airflow_provider_nairi.hooks.nairi import NairiHook  # noqa: PLC0415 (not at DAG parse)

        return NairiHook(nairi_conn_id=self.conn_id)

    @property
    def api(self) -> NairiClient:
        """The Nairi API of ``self.conn_id``: ``self.hook.client``."""
        return self.hook.client
