"""What a Nairi client needs to know, validated once: base URL, key, timeouts, retry limits, TLS, proxies.

The connection extras are described once, in :data:`EXTRA_FIELDS` (name, type, default, allowed values, help).
From that one table come the validation of a connection (:func:`parse_extras`), the connection form of Airflow
3.2+ (:func:`connection_form`, used by ``get_provider_info``) and the form of Airflow 2.11 (the hook's
``get_connection_form_widgets``). Extras may arrive typed (JSON) or as strings (connection URIs): ``"30"`` and
``"true"`` are accepted for numbers and booleans.

Key checks run before any request: a missing key, an agent key (``ccagent_``) or a key with surrounding
whitespace raise :class:`~airflow_provider_nairi.exceptions.NairiConfigurationError`; a key that starts with
neither ``nr_`` nor ``nv_`` is only warned about (the warning never shows the key).

Pure: imports no Airflow.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_nairi import __version__
from airflow_provider_nairi.exceptions import NairiConfigurationError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.nairi.ai/api/public/v1"
DEFAULT_API_PATH = "/api/public/v1"
DEFAULT_DASHBOARD_URL = "https://app.nairi.ai"
PUBLIC_KEY_PREFIXES = ("nr_", "nv_")
AGENT_KEY_PREFIX = "ccagent_"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
AUTH_HEADERS = ("x-api-key", "bearer")
#: Default of the ``max_answer_bytes`` extra: 64 MiB, far above a page of 200 items.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ExtraField:
    """One connection extra: its JSON type, default, allowed values and the help a user sees in the form."""

    name: str
    type: str  # "string", "integer", "number", "boolean", "object", or "boolean|string"
    default: Any
    label: str
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    #: ``minimum`` itself is refused (a zero timeout or cap means nothing).
    exclusive_minimum: bool = False
    #: Names this extra had before (still read from existing connections).
    former_names: tuple[str, ...] = ()
    #: The :class:`ClientConfig` attribute it sets, when not its name.
    config_attribute: str = ""

    @property
    def attribute(self) -> str:
        """The :class:`ClientConfig` attribute this extra sets."""
        return self.config_attribute or self.name


#: What Airflow's secrets masker puts in place of a value it hides; a connection saved from a form that
#: showed it holds it literally.
REDACTED = "***"


EXTRA_FIELDS: tuple[ExtraField, ...] = (
    # Names of extras must not contain a word of Airflow's secrets masker (``auth``+``_header``, ``proxies``,
    # ``proxy``, ``token``, ``secret``, ``password``, ``api_key``...): the UI shows such values as "***" and a
    # form saved from them stores "***" (tests/client/test_extras_round_trip.py feeds every name to it).
    ExtraField(
        "key_header",
        "string",
        "x-api-key",
        "Key header",
        "How the key is sent: 'x-api-key' (X-API-Key header) or 'bearer' (Authorization: Bearer).",
        choices=AUTH_HEADERS,
        former_names=("auth_header",),
        config_attribute="auth_header",
    ),
    ExtraField(
        "connect_timeout",
        "number",
        10.0,
        "Connect timeout (s)",
        "Seconds to open a connection (TCP and TLS).",
        minimum=0,
        exclusive_minimum=True,
    ),
    ExtraField(
        "read_timeout",
        "number",
        60.0,
        "Read timeout (s)",
        "Seconds to wait for each read of an answer.",
        minimum=0,
        exclusive_minimum=True,
    ),
    ExtraField(
        "request_timeout",
        "number",
        120.0,
        "Request timeout (s)",
        "Total seconds one try of a call may take: waiting for a pooled connection, connecting, sending and "
        "reading the whole JSON answer (a body that trickles is cut off). Artifact download bodies are "
        "exempt.",
        minimum=0,
        exclusive_minimum=True,
    ),
    ExtraField(
        "max_retries",
        "integer",
        5,
        "Max retries",
        "Retries of one call after 429, 5xx, connection errors and timeouts (0 disables them).",
        minimum=0,
    ),
    ExtraField(
        "retry_max_wait",
        "number",
        60.0,
        "Longest retry wait (s)",
        "Longest single wait, Retry-After included; a longer Retry-After fails the call at once "
        "(rate limited).",
        minimum=0,
    ),
    ExtraField(
        "retry_total_timeout",
        "number",
        300.0,
        "Retry budget (s)",
        "Total seconds one call may spend retrying before it gives up.",
        minimum=0,
    ),
    ExtraField(
        "max_answer_bytes",
        "integer",
        DEFAULT_MAX_ANSWER_BYTES,
        "Largest JSON answer (bytes)",
        "Largest JSON answer accepted, counted after gzip/deflate decoding, enforced while it arrives "
        "(a larger one fails with NairiAnswerTooLargeError). Artifact downloads stream and are exempt.",
        minimum=0,
        exclusive_minimum=True,
    ),
    ExtraField(
        "dashboard_url",
        "string",
        DEFAULT_DASHBOARD_URL,
        "Dashboard URL",
        "Base URL of the dashboard for links.",
    ),
    ExtraField(
        "verify",
        "boolean|string",
        True,
        "TLS verification",
        "true (default), false (do not verify: unsafe), or the path of a CA bundle.",
    ),
    ExtraField(
        "egress_urls",
        "object",
        None,
        "Egress (forward proxy) URLs",
        'Forward proxy URL by scheme, e.g. {"https": "http://egress:3128"}, or one URL for both. Shown in '
        "clear in the form: for a proxy that needs credentials, set HTTPS_PROXY on the workers instead.",
        former_names=("proxies",),
        config_attribute="proxies",
    ),
    ExtraField(
        "user_agent_suffix",
        "string",
        "",
        "User-Agent suffix",
        "Appended to the User-Agent (team or DAG name).",
    ),
    ExtraField(
        "allow_insecure_http",
        "boolean",
        False,
        "Allow plain http",
        "Allow http:// to a host that is not loopback (the key then travels unencrypted).",
    ),
)
EXTRAS_BY_NAME: dict[str, ExtraField] = {f.name: f for f in EXTRA_FIELDS}
#: Every name an extra is read under: its name and its former names.
EXTRAS_BY_ANY_NAME: dict[str, ExtraField] = {
    name: f for f in EXTRA_FIELDS for name in (f.name, *f.former_names)
}

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _coerce(spec: ExtraField, value: Any, given_name: str) -> Any:
    """``value`` as ``spec.type``, or NairiConfigurationError naming the field (as given) and what it
    accepts."""

    def wrong(expected: str) -> NairiConfigurationError:
        return NairiConfigurationError(
            f"Connection extra {given_name!r} is {value!r}; expected {expected}. {spec.help}",
            code="invalid_extra",
        )

    if value == REDACTED:
        renamed = f" and rename it to {spec.name!r}" if given_name != spec.name else ""
        raise NairiConfigurationError(
            f"Connection extra {given_name!r} is {REDACTED!r}: Airflow's placeholder for a value its secrets "
            f"masker hid in the connection form, saved as if it were the value. Edit the connection: give "
            f"{given_name!r} its real value{renamed} ({spec.help})",
            code="redacted_extra",
        )

    if spec.type == "string":
        if not isinstance(value, str):
            raise wrong("a string")
        if spec.choices:
            if value.strip().lower() not in spec.choices:
                raise wrong("one of " + ", ".join(repr(c) for c in spec.choices))
            return value.strip().lower()
        return value
    if spec.type == "boolean":
        flag = _bool(value)
        if flag is None:
            raise wrong("true or false")
        return flag
    if spec.type == "boolean|string":
        flag = _bool(value)
        if flag is not None:
            return flag
        if isinstance(value, str) and value.strip():
            return value
        raise wrong("true, false or the path of a CA bundle")
    if spec.type == "object":
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise wrong("a JSON object of URLs by scheme, or one URL") from None
            else:
                value = {"http": text, "https": text}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise wrong("a JSON object of URLs by scheme, or one URL")
        return dict(value)
    # integer / number
    if isinstance(value, bool):
        raise wrong(f"a{'n integer' if spec.type == 'integer' else ' number'}")
    try:
        number: float | int = int(value) if spec.type == "integer" else float(value)
    except (TypeError, ValueError, OverflowError):
        raise wrong(f"a{'n integer' if spec.type == 'integer' else ' number'}") from None
    if not math.isfinite(number):
        raise wrong("a finite number")
    if spec.type == "integer" and isinstance(value, float) and value != int(value):
        raise wrong("an integer")
    if spec.minimum is not None:
        if spec.exclusive_minimum and number <= spec.minimum:
            raise wrong(f"a number > {spec.minimum:g}")
        if number < spec.minimum:
            raise wrong(f"a number >= {spec.minimum:g}")
    return number


def parse_extras(extras: Mapping[str, Any]) -> dict[str, Any]:
    """Validate connection extras; return every field by its :class:`ClientConfig` attribute, defaults
    filled in.

    ``None`` and ``""`` mean "not set" (a form leaves them so). Unknown names are an error listing the
    known ones; Airflow's own prefixed form names (``extra__nairi__read_timeout``) are accepted as their
    short names, and former names (``auth_header``, ``proxies``) as the current ones; an extra given under
    both names is an error. ``"***"`` (a value Airflow's form hid, then saved) is an error naming the fix;
    it is never sent.
    """
    values = {spec.attribute: spec.default for spec in EXTRA_FIELDS}
    given_as: dict[str, str] = {}
    unknown: list[str] = []
    for raw_name, value in extras.items():
        name = raw_name.removeprefix("extra__nairi__")
        spec = EXTRAS_BY_ANY_NAME.get(name)
        if spec is None:
            unknown.append(raw_name)
        elif value is not None and value != "":
            if spec.name in given_as:
                raise NairiConfigurationError(
                    f"Connection extras {given_as[spec.name]!r} and {name!r} are the same setting (the "
                    f"first name is {spec.name!r}); keep only {spec.name!r}.",
                    code="invalid_extra",
                )
            given_as[spec.name] = name
            values[spec.attribute] = _coerce(spec, value, name)
    if unknown:
        raise NairiConfigurationError(
            f"Unknown connection extra(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"known extras: {', '.join(EXTRAS_BY_NAME)}.",
            code="unknown_extra",
        )
    return values


def check_api_key(key: str | None) -> str:
    """Return the key if it can be sent; raise NairiConfigurationError (never showing the key) if not."""
    if not key:
        raise NairiConfigurationError(
            "No API key: put a Nairi public API key (nr_... or nv_...) in the connection's password field. "
            "Create one in the dashboard under Settings → API Key.",
            code="missing_api_key",
        )
    if key != key.strip():
        raise NairiConfigurationError(
            "The API key has leading or trailing whitespace (a copy-paste slip?): remove it from the "
            "connection's password field.",
            code="api_key_whitespace",
        )
    if key.startswith(AGENT_KEY_PREFIX):
        raise NairiConfigurationError(
            "The connection holds an agent key (ccagent_...): agent keys only authenticate a self-hosted "
            "nairid daemon and the public API refuses them. Create a public API key in the dashboard under "
            "Settings → API Key and put it in the connection's password field.",
            code="agent_key_not_allowed",
        )
    if not key.startswith(PUBLIC_KEY_PREFIXES):
        log.warning(
            "The Nairi API key does not start with nr_ or nv_ (the public key prefixes); "
            "sending it anyway. If calls fail with 401, check that it is a public API key."
        )
    return key


def normalize_base_url(host: str | None, *, allow_insecure_http: bool = False) -> str:
    """Turn a connection's host into the API base URL.

    Empty: the default. A bare host (``api.niravi.io``) gets ``https://`` and the default API path; a URL
    with a path keeps it. Plain ``http://`` is refused unless the host is loopback or
    ``allow_insecure_http`` is set; a loopback host without a scheme (``127.0.0.1:8080/...``) is refused with
    the ``http://`` fix (the emulator does not speak TLS).
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    schemeless = "://" not in text
    if schemeless:
        text = "https://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if schemeless and parts.hostname in LOOPBACK_HOSTS:
        # https:// to a local plain-http server (the emulator) fails with a bare TLS "wrong version number".
        raise NairiConfigurationError(
            f"Connection host {host!r} has no scheme, so https:// would be used, but a loopback host such as "
            f"the local emulator speaks plain http: write http://{text.removeprefix('https://')}",
            code="invalid_host",
        )
    if scheme not in ("http", "https") or not parts.hostname:
        raise NairiConfigurationError(
            f"Connection host {host!r} is not an http(s) URL; expected e.g. {DEFAULT_BASE_URL}.",
            code="invalid_host",
        )
    if scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and not allow_insecure_http:
        raise NairiConfigurationError(
            f"Connection host {host!r} uses plain http to a host that is not loopback: the API key would "
            "travel unencrypted. Use https, or set the extra allow_insecure_http to true if you accept that.",
            code="insecure_http",
        )
    path = parts.path.rstrip("/") or DEFAULT_API_PATH
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in: what "same host" compares."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


@functools.lru_cache(maxsize=64)
def user_agent(airflow_version: str | None, suffix: str = "") -> str:
    """``airflow-provider-nairi/<v> apache-airflow/<v> python/<v>`` plus the suffix (built once per pair:
    every request sends it)."""
    parts = [f"airflow-provider-nairi/{__version__}"]
    if airflow_version:
        parts.append(f"apache-airflow/{airflow_version}")
    parts.append(f"python/{platform.python_version()}")
    if suffix:
        parts.append(suffix.strip())
    return " ".join(parts)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs; build it with :meth:`from_connection` to get the checks and the validation.

    ``repr`` never shows the key.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    auth_header: str = "x-api-key"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    request_timeout: float = 120.0
    max_retries: int = 5
    retry_max_wait: float = 60.0
    retry_total_timeout: float = 300.0
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    dashboard_url: str = DEFAULT_DASHBOARD_URL
    verify: bool | str = True
    proxies: dict[str, str] | None = None
    user_agent_suffix: str = ""
    allow_insecure_http: bool = False
    airflow_version: str | None = None

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        password: str | None,
        extras: Mapping[str, Any] | None = None,
        airflow_version: str | None = None,
    ) -> ClientConfig:
        """Validate a connection's parts (host, password = key, extras) and build the config."""
        values = parse_extras(extras or {})
        base_url = normalize_base_url(host, allow_insecure_http=values["allow_insecure_http"])
        return cls(
            api_key=check_api_key(password),
            base_url=base_url,
            airflow_version=airflow_version,
            **values,
        )

    @property
    def user_agent(self) -> str:
        return user_agent(self.airflow_version, self.user_agent_suffix)

    def auth_headers(self) -> dict[str, str]:
        """The headers that carry the key (never log these)."""
        if self.auth_header == "bearer":
            return {"Authorization": f"Bearer {self.api_key}"}
        return {"X-API-Key": self.api_key}

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***``."""
        return text.replace(self.api_key, "***") if self.api_key else text


def connection_form() -> dict[str, Any]:
    """The connection form of Airflow 3.2+: ``{"conn-fields": ..., "ui-field-behaviour": ...}``.

    ``get_provider_info`` puts both into the ``nairi`` entry of ``connection-types`` (shapes from Airflow's
    ``provider.yaml.schema.json``).
    """
    fields: dict[str, Any] = {}
    for spec in EXTRA_FIELDS:
        schema: dict[str, Any] = {
            "type": ["boolean", "string", "null"]
            if spec.type == "boolean|string"
            else [spec.type if spec.type != "object" else "string", "null"],
        }
        if spec.default is not None and spec.type != "object":
            schema["default"] = spec.default
        if spec.choices:
            schema["enum"] = list(spec.choices)
        if spec.minimum is not None:
            schema["exclusiveMinimum" if spec.exclusive_minimum else "minimum"] = spec.minimum
        if spec.type == "object":
            schema["format"] = "json"
        if spec.name == "dashboard_url":
            schema["format"] = "url"
        fields[spec.name] = {"label": spec.label, "description": spec.help, "schema": schema}
    return {"conn-fields": fields, "ui-field-behaviour": UI_FIELD_BEHAVIOUR_KEBAB}


#: Which standard connection fields the form hides and how it names the others.
HIDDEN_FIELDS = ["schema", "port", "login"]
RELABELING = {"host": "Base URL", "password": "API key"}
PLACEHOLDERS = {"host": DEFAULT_BASE_URL, "password": "nr_..."}
UI_FIELD_BEHAVIOUR_KEBAB = {
    "hidden-fields": HIDDEN_FIELDS,
    "relabeling": RELABELING,
    "placeholders": PLACEHOLDERS,
}
