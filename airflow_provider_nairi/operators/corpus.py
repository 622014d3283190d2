"""The read-only corpus calls: :class:`NairiSearchOperator`, :class:`NairiRecallOperator`,
:class:`NairiChatOperator`.

.. important:: XCom size rule

    XCom lives in Airflow's metadata database. When ``output_path`` is given (a local path, ``file://`` or any
    ObjectStoragePath URI), the operator always writes the results there as JSON and the XCom holds that path,
    so a downstream task knows what it receives. Without ``output_path`` the XCom holds the results, up to
    :data:`XCOM_MAX_BYTES` (48 KiB of JSON); larger results fail the task with an error that names
    ``output_path`` (:class:`~airflow_provider_nairi.exceptions.NairiXComSizeError`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiXComSizeError
from airflow_provider_nairi.operators.base import NairiBaseOperator
from airflow_provider_nairi.sources import as_path
from airflow_provider_nairi.validation import ids_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Largest JSON result (in bytes) that search, recall and chat put into XCom; see the module docstring.
XCOM_MAX_BYTES = 48 * 1024

#: The API's bound on ``limit`` for search and recall.
MAX_CORPUS_LIMIT = 50


class NairiCorpusOperator(NairiBaseOperator):
    """Base of the read-only corpus operators: results to XCom, or to ``output_path`` (the XCom size rule).

    :param video_ids: restrict to these videos: ids, or the dicts the video operators returned (templated).
    :param output_path: write the results here as JSON (local path, ``file://`` / ``s3://``... URI or
        ObjectStoragePath; templated) and return the path instead of the results.
    """

    def __init__(
        self,
        *,
        video_ids: list[str] | list[dict[str, Any]] | None = None,
        output_path: str | Path | ObjectStoragePath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video_ids = video_ids
        self.output_path = output_path

    def call(self, video_ids: list[str] | None) -> Any:
        """Send the request; return the API's data."""
        raise NotImplementedError

    def run(self, context: Context) -> Any:
        results = self.call(ids_of(self.video_ids, "video_ids"))
        payload = json.dumps(results, ensure_ascii=False)
        if self.output_path is not None:
            target = as_path(self.output_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(payload, encoding="utf-8")
            self.log.info("Wrote %d bytes of results to %s", len(payload.encode()), target)
            return str(target)
        size = len(payload.encode())
        if size > XCOM_MAX_BYTES:
            raise NairiXComSizeError(
                f"output_path: the results are {size} bytes of JSON, over the {XCOM_MAX_BYTES} bytes this "
                "operator puts into XCom (the metadata database). Set output_path='s3://.../results.json' "
                "(or a local path) to write them there and pass the path instead, or ask for fewer results."
            )
        return results


class NairiSearchOperator(NairiCorpusOperator):
    """Search the org's video corpus: ``POST /search``.

    Returns (XCom) ``[{"video_id", "start_s", "end_s", "text", "score"}, ...]``, best first, or the path they
    were written to (see the XCom size rule in :mod:`airflow_provider_nairi.operators.content`).

    :param query: what to look for (templated).
    :param limit: at most this many results (1 to 50; the API's default when ``None``).
    :param video_ids: restrict to these videos (templated).
    :param output_path: write the results there instead of XCom (templated).
    :param conn_id: the Nairi connection.
    """

    template_fields = ("query", "video_ids", "output_path")

    def __init__(self, *, query: str, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.limit = limit

    def call(self, video_ids: list[str] | None) -> Any:
        if not isinstance(self.query, str) or not self.query.strip():
            raise NairiConfigurationError(f"query: give a non-empty query (got {self.query!r}).")
        if self.limit is not None and not 1 <= self.limit <= MAX_CORPUS_LIMIT:
            raise NairiConfigurationError(f"limit: {self.limit!r} is not between 1 and {MAX_CORPUS_LIMIT}.")
        return self.query_corpus(self.query, limit=self.limit, video_ids=video_ids)

    def query_corpus(self, query: str, *, limit: int | None, video_ids: list[str] | None) -> Any:
        """``POST /search`` (:class:`NairiRecallOperator`: ``POST /recall``)."""
        return self.api.search(query, limit=limit, video_ids=video_ids)


class NairiRecallOperator(NairiSearchOperator):
    """Recall summarised moments from the org's video corpus: ``POST /recall``.

    Returns (XCom) ``[{"video_id", "start_s", "end_s", "summary", "score"}, ...]``, best first, or the path
    they were written to (see the XCom size rule in :mod:`airflow_provider_nairi.operators.content`).
    Parameters are those of :class:`NairiSearchOperator`.
    """

    def query_corpus(self, query: str, *, limit: int | None, video_ids: list[str] | None) -> Any:
        return self.api.recall(query, limit=limit, video_ids=video_ids)


class NairiChatOperator(NairiCorpusOperator):
    """Ask a question about the org's videos: ``POST /chat`` (a single read-only answer, not a conversation).

    Returns (XCom) ``{"answer", "citations": [{"video_id", "start_s", "end_s"}, ...]}``, or the path it was
    written to (see the XCom size rule in :mod:`airflow_provider_nairi.operators.content`).

    :param message: the question (templated).
    :param video_ids: restrict to these videos (templated).
    :param output_path: write the answer there instead of XCom (templated).
    :param conn_id: the Nairi connection.
    """

    template_fields = ("message", "video_ids", "output_path")

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def call(self, video_ids: list[str] | None) -> Any:
        if not isinstance(self.message, str) or not self.message.strip():
            raise NairiConfigurationError(f"message: give a non-empty message (got {self.message!r}).")
        return self.api.chat(self.message, video_ids=video_ids)
