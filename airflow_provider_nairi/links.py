"""Extra links from a task to the Nairi dashboard.

The dashboard's base URL comes from the connection's extra ``dashboard_url`` (default
``https://app.nairi.ai``; see ``NairiHook.dashboard_url``), so a regional or self-hosted deployment links to
its own dashboard. Operators push the page's URL as XCom when they learn the id; a link reads it back, so
rendering a link never looks up a connection or calls the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskInstanceKey

    from airflow_provider_nairi.hooks.nairi import NairiHook

#: XCom key of the conversation id (pushed as soon as it is known).
XCOM_CONVERSATION_ID = "conversation_id"
#: XCom key of the conversation's dashboard URL, read by :class:`NairiConversationLink`.
XCOM_CONVERSATION_URL = "conversation_url"
#: XCom key of the dashboard URL of the (first) video a task handled, read by :class:`NairiVideoLink`.
XCOM_VIDEO_URL = "video_url"
#: XCom key of the dashboard URL of the agent a task declared, read by :class:`NairiAgentLink`.
XCOM_AGENT_URL = "agent_url"


class NairiXComLink(BaseOperatorLink):
    """A link whose URL an operator pushed as XCom under :attr:`xcom_key` (empty until it did)."""

    xcom_key: ClassVar[str]

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return str(XCom.get_value(key=self.xcom_key, ti_key=ti_key) or "")


class NairiConversationLink(NairiXComLink):
    """The conversation's page in the dashboard ("Nairi conversation")."""

    name = "Nairi conversation"
    xcom_key = XCOM_CONVERSATION_URL


class NairiVideoLink(NairiXComLink):
    """The page of the (first) video a task uploaded, reprocessed or waited for ("Nairi video")."""

    name = "Nairi video"
    xcom_key = XCOM_VIDEO_URL


class NairiAgentLink(NairiXComLink):
    """The page of the agent a task declared ("Nairi agent")."""

    name = "Nairi agent"
    xcom_key = XCOM_AGENT_URL


def publish_video_link(hook: NairiHook, context: Context, video_ids: list[str]) -> None:
    """Push the dashboard URL of the first video as XCom (read by the "Nairi video" extra link)."""
    context["ti"].xcom_push(key=XCOM_VIDEO_URL, value=hook.dashboard_url("videos", video_ids[0]))
