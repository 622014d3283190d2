"""Vault secrets and env vars as code: values taken from Airflow, kept out of everything Airflow stores.

Where a value comes from (a *source*):

- ``FromConnection("db", "password")`` or ``{"conn_id": "db", "field": "password"}``: a field of an Airflow
  connection (``password``, ``login``, ``host``, ``schema``, ``port``, or ``extra.<key>`` for a key of its
  extra);
- ``FromVariable("key")`` or ``{"variable": "key"}``: an Airflow Variable;
- a string: a literal, or a Jinja template such as ``"{{ var.value.api_token }}"``.

Secret-handling guarantees (what the tests check):

- Values are resolved at execute time only, and each secret value goes to ``mask_secret`` the moment it is
  resolved, before any request, log line or error can carry it. Airflow's masker then replaces it with
  ``***`` in task logs (values of 5 characters or fewer are too short for Airflow to mask; do not use such
  secrets).
- ``secrets`` and ``env_vars`` are deliberately **not** template fields. The operator renders the strings in
  them (templated references and templated values) itself, at execute time, so a rendered secret never
  reaches the "Rendered Template" view or the rendered-fields table. Connection ids and Variable keys may be
  templated too.
- The XCom lists names and actions only; no value, not even of a non-secret env var.
- An API error raised while writing a value has that value replaced by ``***`` in its message and details.
- Secret values are write-only in the API, so they cannot be compared: every declared secret is written on
  every run (a rotated password reaches Nairi on the next run). Such a secret whose name already existed is
  reported ``unchanged`` and listed under ``rewritten``.

Do not put literal secrets in a DAG file: the file itself is shown in Airflow's UI. Use a connection or
Variable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook, Variable, mask_secret

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiError, NairiNotFoundError
from airflow_provider_nairi.operators.admin import (
    CREATED,
    DELETED,
    UNCHANGED,
    UPDATED,
    NairiAdminOperator,
    changed_fields,
    overall_action,
)
from airflow_provider_nairi.resources.org import ORG_KINDS
from airflow_provider_nairi.validation import check_flag, check_label, check_names

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

_CONNECTION_FIELDS = ("password", "login", "host", "schema", "port")


@dataclass(frozen=True)
class FromConnection:
    """A value read from an Airflow connection at execute time.

    :param conn_id: the connection id (templated).
    :param field: ``password`` (default), ``login``, ``host``, ``schema``, ``port`` or ``extra.<key>``.
    """

    conn_id: str
    field: str = "password"


@dataclass(frozen=True)
class FromVariable:
    """A value read from an Airflow Variable at execute time.

    :param key: the Variable's key (templated).
    """

    key: str


SecretSource = str | FromConnection | FromVariable | Mapping[str, Any]


def _as_source(param: str, source: Any) -> str | FromConnection | FromVariable:
    if isinstance(source, (str, FromConnection, FromVariable)):
        return source
    if isinstance(source, Mapping) and set(source) <= {"conn_id", "field"} and "conn_id" in source:
        return FromConnection(**source)
    if isinstance(source, Mapping) and set(source) == {"variable"}:
        return FromVariable(source["variable"])
    raise NairiConfigurationError(
        f"{param}: give a string, FromConnection(conn_id, field), FromVariable(key), "
        f"{{'conn_id': ..., 'field': ...}} or {{'variable': ...}} (got a {type(source).__name__})."
    )


def resolve(operator: NairiAdminOperator, param: str, source: Any, context: Context, *, secret: bool) -> str:
    """Return the value of ``source``; a secret value is passed to ``mask_secret`` before anything else.

    :param param: ``secrets['DB_PASSWORD']``-style name for error messages (which never show the value).
    """
    source = _as_source(param, source)
    if isinstance(source, FromConnection):
        conn_id = operator.render_template(source.conn_id, context)
        connection = BaseHook.get_connection(conn_id)
        if source.field.startswith("extra."):
            value = connection.extra_dejson.get(source.field.removeprefix("extra."))
        elif source.field in _CONNECTION_FIELDS:
            value = getattr(connection, source.field)
        else:
            raise NairiConfigurationError(
                f"{param}: field {source.field!r} is not one of {', '.join(_CONNECTION_FIELDS)} "
                "or 'extra.<key>'."
            )
        origin = f"connection {conn_id!r} has no {source.field}"
    elif isinstance(source, FromVariable):
        key = operator.render_template(source.key, context)
        value = Variable.get(key, None)  # positional: `default` on Airflow 3, `default_var` on 2
        origin = f"Variable {key!r} is not set"
    else:
        value = operator.render_template(source, context)
        origin = "the value is empty"
    if value is None or (secret and value == ""):
        raise NairiConfigurationError(f"{param}: {origin}.")
    value = str(value)
    if secret:
        mask_secret(value)
    return value


@contextmanager
def scrubbed(values: Sequence[str]) -> Iterator[None]:
    """Replace ``values`` by ``***`` in the message and details of a :class:`NairiError` raised inside."""
    try:
        yield
    except NairiError as error:
        for value in values:
            error.message = error.message.replace(value, "***")
            error.details = [{k: str(v).replace(value, "***") for k, v in d.items()} for d in error.details]
        error.args = (error.message,)
        raise


class NairiVaultSecretsOperator(NairiAdminOperator):
    """Ensure the vault ``vault_name`` exists and holds the declared secrets.

    .. important::

        - The vault is found by name (two vaults with that name fail the task with both ids) or created.
        - Every declared secret is written on every run: the API never returns secret values, so they cannot
          be compared (writing is idempotent; rotations propagate on the next run).
        - ``prune=True`` deletes the vault's secrets that are not declared; otherwise they are kept and
          listed.
        - See the module documentation for where values come from and the secret-handling guarantees.

    Returns (XCom) ``{"kind": "vault", "id", "name", "action", "secrets": [{"name", "action"}], "rewritten",
    "kept"}``: names only. ``action`` is ``created``, ``updated`` (a secret was added or deleted) or
    ``unchanged``.

    :param vault_name: the vault's name (templated).
    :param secrets: secret name -> source (see the module documentation); names match
        ``^[A-Za-z_][A-Za-z0-9_]{0,127}$``. Not a template field: rendered by the operator at execute time.
    :param prune: delete undeclared secrets.
    :param conn_id: the Nairi connection.
    """

    template_fields: Sequence[str] = ("vault_name",)

    def __init__(
        self, *, vault_name: str, secrets: Mapping[str, SecretSource], prune: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.vault_name = vault_name
        self.secrets = dict(secrets)
        check_names("secrets", self.secrets)  # keys are not templated: checked when the DAG is parsed
        self.prune = check_flag("prune", prune)

    def run(self, context: Context) -> dict[str, Any]:
        name = check_label("vault_name", self.vault_name)
        values = {
            key: resolve(self, f"secrets[{key!r}]", source, context, secret=True)
            for key, source in self.secrets.items()
        }

        vault, vault_plan = self.upsert("vault", name, {}, **ORG_KINDS["vault"].bound(self.api))
        existing = set(vault.get("secret_names") or ())

        items = []
        with scrubbed(list(values.values())):
            for key, value in values.items():
                self.api.put_vault_secret(vault["id"], key, value)
                items.append({"name": key, "action": UNCHANGED if key in existing else CREATED})
        undeclared = sorted(existing - set(values))
        if self.prune:
            for key in undeclared:
                with suppress(NairiNotFoundError):  # already gone: the goal is reached
                    self.api.delete_vault_secret(vault["id"], key)
                items.append({"name": key, "action": DELETED})
        plan = {
            "kind": "vault",
            "id": vault["id"],
            "name": name,
            "action": overall_action(vault_plan["action"], items),
            "secrets": items,
            "rewritten": sorted(existing & set(values)),
            "kept": [] if self.prune else undeclared,
        }
        self.log.info("Nairi vault %r secrets: %s", name, items)
        return plan


@dataclass(frozen=True)
class _EnvVar:
    value: str
    secret: bool


class NairiEnvVarsOperator(NairiAdminOperator):
    """Ensure the org's env vars hold the declared values; honour each one's ``secret`` flag.

    ``env_vars`` maps a name to a source (see the module documentation) or to ``{"value": source, "secret":
    bool}``. A plain string is not secret unless said so; a value from a connection or a Variable is secret
    unless ``"secret": False`` is given. Secret values are masked before use.

    .. important::

        - Non-secret env vars are compared by value and secret flag: equal ones are not written.
        - Secret env vars are written on every run (the API returns ``null`` for their value); one that
          already existed as a secret is ``unchanged`` and listed under ``rewritten``.
        - ``prune=True`` deletes the org's env vars that are not declared; otherwise they are kept and listed.

    Returns (XCom) ``{"kind": "env_vars", "action", "env_vars": [{"name", "action", "fields"}], "rewritten",
    "kept"}``: names only, never values.

    :param env_vars: name -> source or ``{"value": source, "secret": bool}``. Not a template field:
        rendered by the operator at execute time.
    :param prune: delete undeclared env vars.
    :param conn_id: the Nairi connection.
    """

    def __init__(self, *, env_vars: Mapping[str, Any], prune: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.env_vars = dict(env_vars)
        check_names("env_vars", self.env_vars)  # keys are not templated: checked when the DAG is parsed
        self.prune = check_flag("prune", prune)

    def _resolve(self, name: str, declared: Any, context: Context) -> _EnvVar:
        param = f"env_vars[{name!r}]"
        if isinstance(declared, Mapping) and "value" in declared:
            if not set(declared) <= {"value", "secret"}:
                raise NairiConfigurationError(f"{param}: only 'value' and 'secret' are allowed in this form.")
            source = _as_source(param, declared["value"])
            secret = bool(declared.get("secret", not isinstance(source, str)))
        else:
            source = _as_source(param, declared)
            secret = not isinstance(source, str)
        return _EnvVar(resolve(self, param, source, context, secret=secret), secret)

    def run(self, context: Context) -> dict[str, Any]:
        desired = {name: self._resolve(name, declared, context) for name, declared in self.env_vars.items()}
        current = {item["name"]: item for item in self.api.list_env_vars()}

        items: list[dict[str, Any]] = []
        rewritten: list[str] = []
        with scrubbed([var.value for var in desired.values() if var.secret]):
            for name, var in desired.items():
                existing = current.get(name)
                wanted = {"secret": var.secret} if var.secret else {"secret": False, "value": var.value}
                fields = [] if existing is None else changed_fields(existing, wanted)
                action = CREATED if existing is None else UPDATED if fields else UNCHANGED
                if action == UNCHANGED and var.secret:
                    rewritten.append(name)
                if action != UNCHANGED or var.secret:
                    self.api.put_env_var(name, var.value, secret=var.secret)
                items.append({"name": name, "action": action, "fields": fields})
        undeclared = sorted(set(current) - set(desired))
        if self.prune:
            for name in undeclared:
                with suppress(NairiNotFoundError):  # already gone: the goal is reached
                    self.api.delete_env_var(name)
                items.append({"name": name, "action": DELETED, "fields": []})
        plan = {
            "kind": "env_vars",
            "action": overall_action(UNCHANGED, items),
            "env_vars": items,
            "rewritten": rewritten,
            "kept": [] if self.prune else undeclared,
        }
        self.log.info("Nairi env vars: %s; %s", plan["action"], items)
        return plan
