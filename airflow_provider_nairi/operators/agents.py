"""Agents as code: :class:`NairiAgentOperator` makes one agent match what the DAG declares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.links import XCOM_AGENT_URL, NairiAgentLink
from airflow_provider_nairi.operators.admin import NairiAdminOperator
from airflow_provider_nairi.resources.org import ORG_KINDS
from airflow_provider_nairi.validation import check_label

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiAgentOperator(NairiAdminOperator):
    """Ensure the agent called ``name`` exists with these instructions, model and vaults.

    .. important::

        - **Declarative**: the agent is found by name among all agents of the org. Absent: it is created.
          Present: only the fields that differ are patched. Equal: nothing is sent. ``model=None`` and
          ``vault_ids=None`` mean "not managed here": the agent keeps whatever it has. The order of
          ``vault_ids`` does not matter.
        - **Names are the identity**: two agents with the same name fail the task with both ids; delete or
          rename the extra one.
        - **Retries** converge: a retry reads the state again; the create carries an idempotency key derived
          from the task instance, so a lost answer is replayed instead of creating a second agent.

    Returns (XCom) ``{"kind": "agent", "id", "name", "action", "fields"}``: ``action`` is ``created``,
    ``updated`` (``fields`` lists the patched field names) or ``unchanged``. The agent's dashboard page is
    pushed under ``agent_url`` and shown as the task's "Nairi agent" link.

    :param name: the agent's name (templated).
    :param instructions: its system instructions (templated).
    :param model: the model, or ``None`` to leave it to the server / as it is (templated).
    :param vault_ids: ids of the vaults the agent may read, e.g. ``[vault_task.output["id"]]``; ``None`` to
        leave them as they are (templated).
    :param conn_id: the Nairi connection.
    """

    template_fields: Sequence[str] = ("name", "instructions", "model", "vault_ids")
    operator_extra_links = (NairiAgentLink(),)

    def __init__(
        self,
        *,
        name: str,
        instructions: str,
        model: str | None = None,
        vault_ids: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.instructions = instructions
        self.model = model
        self.vault_ids = vault_ids

    def run(self, context: Context) -> dict[str, Any]:
        name = check_label("name", self.name)
        desired: dict[str, Any] = {"instructions": self.instructions}
        if self.model is not None:
            desired["model"] = self.model
        if self.vault_ids is not None:
            desired["vault_ids"] = list(self.vault_ids)

        _, plan = self.upsert("agent", name, desired, **ORG_KINDS["agent"].bound(self.api))
        context["ti"].xcom_push(key=XCOM_AGENT_URL, value=self.hook.dashboard_url("agents", plan["id"]))
        return plan
