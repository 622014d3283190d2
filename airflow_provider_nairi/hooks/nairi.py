"""NairiHook and NairiAsyncHook: an Airflow connection (``conn_type`` ``nairi``) turned into a Nairi client.

The connection: **password** = the public API key (``nr_...`` / ``nv_...``), **host** = the API base URL
(empty: ``https://api.nairi.ai/api/public/v1``; a bare host gets ``https://`` and the default path),
**extras** = the fields of :data:`~airflow_provider_nairi.client.config.EXTRA_FIELDS` (see
``docs/connection.md``).

Nothing touches the network or even reads the connection in ``__init__``: the connection is read, validated
and the key handed to Airflow's secrets masker on the first call.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import airflow
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, mask_secret

from airflow_provider_nairi.client.api import AsyncNairiApi
from airflow_provider_nairi.client.config import (
    EXTRA_FIELDS,
    HIDDEN_FIELDS,
    PLACEHOLDERS,
    RELABELING,
    ClientConfig,
)
from airflow_provider_nairi.client.endpoints import ASYNC_ENDPOINT_NAMES, ENDPOINT_NAMES
from airflow_provider_nairi.client.protocol import RateLimit
from airflow_provider_nairi.client.sync import NairiClient

if TYPE_CHECKING:
    from airflow_provider_nairi.client.aio import AsyncNairiClient
from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiError
from airflow_provider_nairi.hooks._class_log import ClassLogMixin
from airflow_provider_nairi.hooks.managed_agent import NairiManagedAgentMixin


def _extras(connection: Any) -> dict[str, Any]:
    try:
        return dict(connection.extra_dejson)
    except (TypeError, ValueError) as exc:  # pragma: no cover - Airflow already rejects malformed extras
        raise NairiConfigurationError(f"Connection extras are not a JSON object: {exc}") from None


def connection_not_found(conn_id: str) -> NairiConfigurationError:
    """The error for a connection Airflow does not know: what to create, and how to use the emulator."""
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    return NairiConfigurationError(
        f"Airflow connection {conn_id!r} is not defined. Create a connection of type 'nairi' with your "
        f'public API key (nr_...) as password, e.g. {variable}=\'{{"conn_type": "nairi", "password": '
        f'"nr_..."}}\'. To work offline against the local emulator, start `nairi-emulator` and set '
        f'{variable}=\'{{"conn_type": "nairi", "host": "http://127.0.0.1:<port>/api/public/v1", '
        f'"password": "<the key it prints>"}}\'; in pytest, the nairi_emulator fixture sets it for you '
        "(docs/testing-your-dags.md).",
        code="connection_not_found",
    )


def config_from_connection(connection: Any, overrides: Mapping[str, Any]) -> ClientConfig:
    """Validate a connection (plus keyword overrides of its extras) and mask its key in Airflow's logs."""
    config = ClientConfig.from_connection(
        host=connection.host,
        password=connection.password,
        extras={**_extras(connection), **overrides},
        airflow_version=str(airflow.__version__),
    )
    mask_secret(config.api_key)
    return config


class _NairiConnectionHook(BaseHook):
    """What both hooks share: the connection to read (``conn_id`` is an alias of ``nairi_conn_id``) and
    keyword overrides of its extras."""

    conn_name_attr = "nairi_conn_id"
    default_conn_name = "nairi_default"
    conn_type = "nairi"
    hook_name = "Nairi"

    def __init__(
        self, nairi_conn_id: str = default_conn_name, *, conn_id: str | None = None, **overrides: Any
    ):
        super().__init__()
        self.nairi_conn_id = conn_id or nairi_conn_id
        self.overrides = overrides


class NairiHook(_NairiConnectionHook, NairiManagedAgentMixin):
    """An Airflow connection turned into a Nairi client: ``NairiHook(conn_id).client`` is the API object; with
    the ``common-ai`` extra, also a common.ai managed-agent hook (``NairiHook().agent("support")``, see
    ``docs/common-ai.md``).

    ``hook.client`` is a :class:`~airflow_provider_nairi.client.sync.NairiClient`: every endpoint of the API
    (``hook.client.create_conversation(...)``, ``hook.client.list_agents()``...; the table is
    :class:`~airflow_provider_nairi.client.endpoints.Endpoints`), plus ``request`` and ``paginate``. Retries,
    idempotency keys, redirects, rate limits: ``docs/errors-and-retries.md``. Errors are
    :class:`~airflow_provider_nairi.exceptions.NairiError` subclasses; operators translate them in
    ``outcomes.py``. ``hook.<endpoint>`` still works, as a deprecated alias of ``hook.client.<endpoint>``
    (removed in 1.0).

    :param nairi_conn_id: the connection (default ``nairi_default``); ``conn_id`` is accepted as an alias.
    :param overrides: values of connection extras for this hook only (``read_timeout=5``,
      ``max_retries=0``...), validated like the extras.
    """

    @cached_property
    def config(self) -> ClientConfig:
        """The validated connection (read on first use)."""
        try:
            connection = self.get_connection(self.nairi_conn_id)
        except AirflowNotFoundException:
            raise connection_not_found(self.nairi_conn_id) from None
        return config_from_connection(connection, self.overrides)

    @cached_property
    def client(self) -> NairiClient:
        """The sync client, built on first use and reused (one ``requests.Session``)."""
        return NairiClient(self.config)

    def get_conn(self) -> NairiClient:
        """The sync :class:`~airflow_provider_nairi.client.sync.NairiClient` (same as ``client``; reads the
        connection on first use).
        """
        return self.client

    def close(self) -> None:
        """Close the HTTP session if one was opened."""
        if "client" in self.__dict__:
            self.client.close()

    @property
    def rate_limit(self) -> RateLimit | None:
        """``(limit, remaining, reset)`` from the latest answer; None before the first call."""
        return self.client.rate_limit if "client" in self.__dict__ else None

    def dashboard_url(self, kind: str, object_id: str) -> str:
        """The dashboard page of an object: ``kind`` is ``conversations``, ``agents`` or ``videos``."""
        return f"{self.config.dashboard_url.rstrip('/')}/{kind}/{object_id}"

    # -- connection test and form ---------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Call ``GET /me``: name the org, the key and its scopes, or say why it failed."""
        try:
            me = self.client.get_me()
        except NairiError as error:
            return False, str(error)
        org, key = me.get("org") or {}, me.get("key") or {}
        scopes = key.get("scopes") or []
        message = (
            f"Connected to org {org.get('name')!r} ({org.get('id')}) with key {key.get('name')!r} "
            f"(scopes: {', '.join(scopes) or 'none'})."
        )
        if "write" not in scopes:
            message += " The key cannot write: operators that create or change objects will get 403."
        return True, message

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields: Airflow 2.11's form, and the UI form of 3.0 (with the FAB provider
        installed) and 3.1, which run this with stand-ins for FAB. Airflow 3.2+ reads ``conn-fields``."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget  # noqa: PLC0415 (building the form only)
        from flask_babel import lazy_gettext  # noqa: PLC0415 (building the form only)
        from wtforms import BooleanField, StringField  # noqa: PLC0415 (building the form only)

        widgets: dict[str, Any] = {}
        for spec in EXTRA_FIELDS:
            if spec.type == "boolean":
                widgets[spec.name] = BooleanField(lazy_gettext(spec.label), description=spec.help)
            else:
                widgets[spec.name] = StringField(
                    lazy_gettext(spec.label), widget=BS3TextFieldWidget(), description=spec.help
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the form (Airflow 2.11 to 3.1)."""
        return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": PLACEHOLDERS}


#: The async client's module (it imports aiohttp): loaded on a trigger's first use, never at DAG parse.
ASYNC_CLIENT_MODULE = "airflow_provider_nairi.client.aio"

#: Seconds one read of a connection serves the other triggers of the event loop that start meanwhile.
CONNECTION_SHARED_FOR = 30.0


class _SharedConnectionReads:
    """One read of each connection per event loop for the triggers that start together.

    A triggerer often starts hundreds of triggers of one connection within seconds (a mapped task deferring
    every wait). Reading it is costly in Airflow 3 (a secrets-backend look-up, a thread, a round trip to the
    supervisor per secret to mask), and triggers that each read it queue behind one another on the event
    loop all of them share. So the first trigger reads it and every trigger of the same connection (and the
    same overrides) that asks while that read runs, or within :data:`CONNECTION_SHARED_FOR` seconds after it
    succeeded, gets its result: a changed connection (a rotated key) reaches new triggers within that time. A
    failed read is not kept (the next trigger reads again); running triggers keep the client they built.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, tuple[asyncio.Task[ClientConfig], float]]
        ] = weakref.WeakKeyDictionary()

    async def read(self, hook: NairiAsyncHook) -> ClientConfig:
        loop = asyncio.get_running_loop()
        reads = self._loops.setdefault(loop, {})
        name = json.dumps([hook.nairi_conn_id, hook.overrides], sort_keys=True, default=repr)
        entry = reads.get(name)
        now = time.monotonic()
        task = entry[0] if entry is not None else None
        if task is not None and task.done():
            failed = task.cancelled() or task.exception() is not None
            if failed or now - entry[1] > CONNECTION_SHARED_FOR:  # type: ignore[index]
                entry = None
        if entry is None:
            entry = reads[name] = (loop.create_task(hook.read_config()), now)
        # shielded: a trigger cancelled while waiting does not cancel the read the others wait for
        return await asyncio.shield(entry[0])


SHARED_CONNECTION_READS = _SharedConnectionReads()


class NairiAsyncHook(ClassLogMixin, _NairiConnectionHook):
    """An Airflow connection (read with ``aget_connection``) turned into the async client, for triggers:
    ``client = await hook.get_async_client()``, then ``await client.get_conversation(id)`` (every endpoint
    but uploads and downloads). Call :meth:`close` in ``finally``: it gives back the event loop's shared
    aiohttp session. aiohttp is imported on first use, never at DAG parse. ``await hook.<endpoint>(...)``
    still works, as a deprecated alias (removed in 1.0).
    """

    def __init__(self, nairi_conn_id: str = _NairiConnectionHook.default_conn_name, **kwargs: Any):
        super().__init__(nairi_conn_id, **kwargs)
        self._client: AsyncNairiClient | None = None

    async def get_async_client(self) -> AsyncNairiClient:
        """The :class:`~airflow_provider_nairi.client.aio.AsyncNairiClient`, built on first use.

        The async client and aiohttp (about 0.25 s of imports, paid by the first trigger of a triggerer) are
        imported in a thread, not on the event loop that every trigger of the triggerer shares. The connection
        is read once per hook, so once per trigger run, never per poll; how long that took is logged at DEBUG
        (on Airflow 3 the first look-up of a new triggerer can take seconds: ``docs/deployment.md``).
        """
        if self._client is None:
            started = time.monotonic()
            aio = sys.modules.get(ASYNC_CLIENT_MODULE)
            if aio is None:
                aio = await asyncio.to_thread(importlib.import_module, ASYNC_CLIENT_MODULE)
            imported = time.monotonic()
            config = await SHARED_CONNECTION_READS.read(self)
            self.log.debug(
                "Read connection %s in %.2f s (async client imported in %.2f s)",
                self.nairi_conn_id,
                time.monotonic() - imported,
                imported - started,
            )
            if self._client is None:  # another coroutine of this hook may have built it meanwhile
                self._client = aio.AsyncNairiClient(config)
        return self._client

    async def read_config(self) -> ClientConfig:
        """Read and validate the connection (``aget_connection``; in a thread on Airflow 2.11)."""
        aget = getattr(self, "aget_connection", None)
        try:
            if aget is not None:
                connection = await aget(self.nairi_conn_id)
            else:  # Airflow 2.11
                connection = await asyncio.to_thread(self.get_connection, self.nairi_conn_id)
        except AirflowNotFoundException:
            raise connection_not_found(self.nairi_conn_id) from None
        return config_from_connection(connection, self.overrides)

    @property
    def last_answer(self) -> tuple[str, str, str | None] | None:
        """``(method, path, request id)`` of the latest answer the client read; None before the first."""
        return self._client.last_answer if self._client is not None else None

    async def close(self) -> None:
        """Give back the event loop's shared aiohttp session if a client was built; call it in ``finally``.
        Safe to call twice.
        """
        if self._client is not None:
            await self._client.close()


# -- deprecated aliases, generated from the endpoint table (README and docs before 0.1.0 taught them) -------


def _deprecated(cls_name: str, name: str) -> None:
    warnings.warn(
        f"{cls_name}.{name} is deprecated; use the client: hook.client.{name} (sync) or "
        f"(await hook.get_async_client()).{name} (async). Removed in 1.0.",
        AirflowProviderDeprecationWarning,
        stacklevel=3,
    )


def _sync_alias(name: str) -> property:
    def forward(hook: NairiHook) -> Any:
        _deprecated("NairiHook", name)
        return getattr(hook.client, name)

    doc = inspect.getdoc(getattr(NairiClient, name)) or ""
    return property(forward, doc=f"Deprecated alias of ``hook.client.{name}`` (removed in 1.0).\n\n{doc}")


def _async_alias(name: str) -> Callable[..., Awaitable[Any]]:
    async def forward(hook: NairiAsyncHook, *args: Any, **kwargs: Any) -> Any:
        _deprecated("NairiAsyncHook", name)
        return await getattr(await hook.get_async_client(), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    doc = inspect.getdoc(getattr(AsyncNairiApi, name)) or ""
    forward.__doc__ = (
        f"Deprecated alias of ``(await hook.get_async_client()).{name}`` (removed in 1.0).\n\n{doc}"
    )
    return forward


PRIMITIVES = ("request", "paginate")
for _name in (*PRIMITIVES, "upload", "download", *ENDPOINT_NAMES):
    setattr(NairiHook, _name, _sync_alias(_name))
for _name in (*PRIMITIVES, *ASYNC_ENDPOINT_NAMES):
    setattr(NairiAsyncHook, _name, _async_alias(_name))
