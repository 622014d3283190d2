"""``NairiBaseOperator``: one connection, one hook, Nairi errors turned into Airflow outcomes in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_nairi.hook_mixin import NairiHookMixin
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

    :param conn_id: the Nairi connection.
    """

    def __init__(self, *, conn_id: str = "nairi_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @airflow_outcome
    def execute(self, context: Context) -> Any:
        return self.run(context)

    @airflow_outcome
    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        return super().resume_execution(next_method, next_kwargs, context)

    def run(self, context: Context) -> Any:
        """Do the work; return the XCom value."""
        raise NotImplementedError
