"""Content operators, by feature since 0.1.0: :mod:`.artifacts`, :mod:`.corpus`, :mod:`.video` (and the video
wait, :mod:`.waiting`). This module keeps the former import path working."""

from __future__ import annotations

from airflow_provider_nairi.operators.artifacts import (
    NairiDownloadArtifactsOperator,
    NairiUploadArtifactsOperator,
)
from airflow_provider_nairi.operators.corpus import (
    MAX_CORPUS_LIMIT,
    XCOM_MAX_BYTES,
    NairiChatOperator,
    NairiCorpusOperator,
    NairiRecallOperator,
    NairiSearchOperator,
)
from airflow_provider_nairi.operators.video import NairiReprocessVideoOperator, NairiUploadVideoOperator
from airflow_provider_nairi.operators.waiting import NairiVideoOperator
from airflow_provider_nairi.validation import ids_of

__all__ = [
    "MAX_CORPUS_LIMIT",
    "XCOM_MAX_BYTES",
    "NairiChatOperator",
    "NairiCorpusOperator",
    "NairiDownloadArtifactsOperator",
    "NairiRecallOperator",
    "NairiReprocessVideoOperator",
    "NairiSearchOperator",
    "NairiUploadArtifactsOperator",
    "NairiUploadVideoOperator",
    "NairiVideoOperator",
    "ids_of",
]
