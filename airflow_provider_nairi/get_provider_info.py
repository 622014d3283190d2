"""Provider registration read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Pure data: Airflow 3.3 calls this at every ``import airflow``, in every process (it loads the providers'
configuration at import), so it imports nothing but the package version and, for the connection form,
:func:`airflow_provider_nairi.client.config.connection_form` (the one description of the connection's fields,
standard library only; the hook's Airflow 2.11 form methods read the same table).
Each module and class named here must import (``tests/citizen/test_provider_info.py`` checks it against the
installed Airflow's ``provider_info.schema.json`` and imports every name): a name that does not import breaks
``airflow providers`` commands for every provider.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_nairi import __version__

INTEGRATION = "Nairi"
PACKAGE = "airflow_provider_nairi"


def _modules(*names: str) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.{name}" for name in names]}]


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list / hooks / triggers / links`` and the connection form show for Nairi."""
    from airflow_provider_nairi.client.config import connection_form  # noqa: PLC0415 (pure, stdlib only)

    return {
        "package-name": "airflow-provider-nairi",
        "name": "Nairi",
        "description": "Drive Nairi AI agents, their content and their org from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://github.com/airflow-provider-nairi/airflow-provider-nairi#readme",
                "tags": ["ai"],
            }
        ],
        "hooks": _modules("hooks.managed_agent", "hooks.nairi"),
        "connection-types": [
            {
                "connection-type": "nairi",
                "hook-class-name": f"{PACKAGE}.hooks.nairi.NairiHook",
                "hook-name": "Nairi",
                **connection_form(),
            }
        ],
        "operators": _modules(
            "operators.admin",
            "operators.agents",
            "operators.artifacts",
            "operators.base",
            "operators.content",
            "operators.conversation",
            "operators.corpus",
            "operators.review",
            "operators.scheduled_jobs",
            "operators.secrets",
            "operators.video",
            "operators.waiting",
        ),
        "sensors": _modules("sensors.base", "sensors.content", "sensors.conversation", "sensors.video"),
        "triggers": _modules(
            "triggers.conversation", "triggers.events", "triggers.polling", "triggers.video"
        ),
        "task-decorators": [
            {"name": "nairi", "class-name": f"{PACKAGE}.decorators.nairi.nairi_task"},
            {"name": "nairi_branch", "class-name": f"{PACKAGE}.decorators.nairi.nairi_branch_task"},
        ],
        "extra-links": [
            f"{PACKAGE}.links.NairiConversationLink",
            f"{PACKAGE}.links.NairiVideoLink",
            f"{PACKAGE}.links.NairiAgentLink",
        ],
    }
