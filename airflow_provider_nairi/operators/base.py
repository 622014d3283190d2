"""``NairiBaseOperator``: one connection, one hook, Nairi errors turned into Airflow outcomes in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_nairi.exceptions import NairiError
from airflow_provider_nairi.hook_mixin import NairiHookMixin
from airflow_provider_nairi.outcomes import raise_for_error

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiBaseOperator(NairiHookMixin, BaseOperator):
    """Base of the content and org-as-code operators (and of your own operators that call Nairi).

    Subclasses implement :meth:`run` with ``self.hook`` (a
    :class:`~airflow_provider_nairi.hooks.nairi.NairiHook`, built at execute time, never while the DAG file
    is parsed); its return value is the XCom ``return_value``. A
    :class:`~airflow_provider_nairi.exceptions.NairiError` raised there goes through
    :func:`airflow_provider_nairi.outcomes.raise_for_error`: errors a retry cannot fix (a bad parameter, 401,
    403, 404, 409, 422) fail the task at once; the others (429, 5xx, network) let Airflow's retries apply.

    :param conn_id: the Nairi connection.
    """

    def __init__(self, *, conn_id: str = "nairi_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def execute(self, context: Context) -> Any:
        try:
            return self.run(context)
        except NairiError as error:
            raise_for_error(error)

    def run(self, context: Context) -> Any:
        """Do the work; return the XCom value."""
        raise NotImplementedError
