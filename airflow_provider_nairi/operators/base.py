"""``NairiBaseOperator``: one connection, one hook, Nairi errors turned into Airflow outcomes in one place,
and the task's result turned into asset-event extras and OpenLineage facets in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, BaseOperator

from airflow_provider_nairi.hook_mixin import NairiHookMixin
from airflow_provider_nairi.lineage import Lineage, asset_extra, nairi_namespace, to_operator_lineage
from airflow_provider_nairi.outcomes import airflow_outcome

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiBaseOperator(NairiHookMixin, BaseOperator):
    """Base of every operator of the provider (and of your own operators that call Nairi).

    Subclasses implement :meth:`run` with ``self.hook`` (a
    :class:`~airflow_provider_nairi.hooks.nairi.NairiHook`, built at execute time, never while the DAG file
    is parsed); its return value is the XCom ``return_value``. A
    :class:`~airflow_provider_nairi.exceptions.NairiError` raised there, or when a deferred task resumes, goes
    through :func:`airflow_provider_nairi.outcomes.airflow_outcome`: errors a retry cannot fix (a bad
    parameter, 401, 403, 404, 409, 422) fail the task at once; the others (429, 5xx, network) let Airflow's
    retries apply.

    The final result, on the worker path (``execute``) or after a deferral (``resume_execution``), goes
    through :meth:`produced`:

    - each concrete ``Asset`` among the task's ``outlets`` gets :meth:`asset_extra` of the result as the extra
      of the asset event the task emits (ids, statuses, sha256s, counts; never a text or a secret; bounded:
      :func:`airflow_provider_nairi.lineage.asset_extra`). Asset aliases are left alone;
    - :meth:`get_openlineage_facets_on_complete` builds OpenLineage facets from the same result with
      :meth:`lineage` (``None`` without the ``openlineage`` extra).

    :param conn_id: the Nairi connection.
    """

    #: The result of the final method (the XCom), once the task produced it.
    nairi_result: Any = None

    def __init__(self, *, conn_id: str = "nairi_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @airflow_outcome
    def execute(self, context: Context) -> Any:
        return self.produced(context, self.run(context))

    @airflow_outcome
    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        return self.produced(context, super().resume_execution(next_method, next_kwargs, context))

    def run(self, context: Context) -> Any:
        """Do the work; return the XCom value."""
        raise NotImplementedError

    def produced(self, context: Context, result: Any) -> Any:
        """Record ``result`` and attach its extra to the task's asset outlets; return it unchanged."""
        self.nairi_result = result
        extra = self.asset_extra(result)
        outlets = self.outlets or []
        if extra and any(isinstance(outlet, Asset) for outlet in outlets):
            events = context["outlet_events"]
            for outlet in outlets:
                if isinstance(outlet, Asset):
                    events[outlet].extra.update(extra)
        return result

    def asset_extra(self, result: Any) -> dict[str, Any]:
        """The extra of this task's asset events (default: :func:`~airflow_provider_nairi.lineage.asset_extra`
        of the result)."""
        return asset_extra(result)

    def lineage(self, namespace: str, result: Any) -> Lineage | None:
        """What this task read and wrote, from its result (``None``: nothing to report). ``namespace``: the
        connection's ``nairi://<host>``."""
        return None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's ``OperatorLineage`` of the finished task, or ``None`` (no extra, nothing to report,
        or the connection cannot be read: lineage never fails a task)."""
        if self.nairi_result is None:
            return None
        try:
            lineage = self.lineage(nairi_namespace(self.hook.config.base_url), self.nairi_result)
        except Exception as error:
            self.log.warning("No OpenLineage facets for this task: %s", error)
            return None
        return None if lineage is None else to_operator_lineage(lineage)
