"""Airflow's REST API (v2) as the harness uses it: a JWT from the simple auth manager, then JSON calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
from stack import E2EError, wait_until


class AirflowApi:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        # SIMPLE_AUTH_MANAGER_ALL_ADMINS: GET /auth/token hands out an admin token without credentials.
        answer = self.session.get(f"{base_url}/auth/token", timeout=30)
        answer.raise_for_status()
        self.token = answer.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        answer = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=60, **kwargs)
        if answer.status_code not in expect:
            raise E2EError(f"{method} /api/v2{path}: {answer.status_code} {answer.text[:500]}")
        return answer.json() if answer.content else None

    @staticmethod
    def run_path(dag_id: str, run_id: str) -> str:
        return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def ti_path(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}"
        return path if map_index < 0 else f"{path}/{map_index}"

    def wait_for_dags(self, dag_ids: list[str], timeout: float) -> None:
        def parsed() -> bool:
            found = {dag["dag_id"] for dag in self.call("GET", "/dags", params={"limit": 100})["dags"]}
            return set(dag_ids) <= found

        wait_until(f"DAGs {dag_ids} parsed", parsed, timeout, 2)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"{self.run_path(dag_id, run_id)}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.call("GET", self.ti_path(dag_id, run_id, task_id))

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.call("GET", self.run_path(dag_id, run_id))["state"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        path = f"{self.ti_path(dag_id, run_id, task_id)}/xcomEntries/{key}"
        return self.call("GET", path, params={"map_index": map_index, "deserialize": True})["value"]

    def links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        path = f"{self.ti_path(dag_id, run_id, task_id)}/links"
        return self.call("GET", path, params={"map_index": map_index})["extra_links"]

    def pending_reviews(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's human-in-the-loop requests nobody answered yet (Airflow 3.1+)."""
        path = f"{self.run_path(dag_id, run_id)}/hitlDetails"
        return self.call("GET", path, params={"response_received": False})["hitl_details"]

    def answer_review(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        option: str,
        fields: dict[str, Any],
        map_index: int = -1,
    ) -> Any:
        """Answer a human-in-the-loop request as the UI's form does: the option chosen and its fields."""
        path = f"{self.ti_path(dag_id, run_id, task_id)}/{map_index}/hitlDetails"
        return self.call("PATCH", path, json={"chosen_options": [option], "params_input": fields})

    def log_text(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        answer = self.call(
            "GET",
            f"{self.ti_path(dag_id, run_id, task_id)}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
        )
        content = answer.get("content")
        if isinstance(content, list):
            return "\n".join(log_line(part) if isinstance(part, dict) else str(part) for part in content)
        return str(content)


def log_line(part: dict[str, Any]) -> str:
    """``level event``, and for an error the exception it carries (``error_detail``: type and message)."""
    line = f"{part.get('level', '')} {part.get('event', '')}"
    for error in part.get("error_detail") or ():
        line += f": {error.get('exc_type')}: {error.get('exc_value')}"
    return line
