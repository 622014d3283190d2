"""The waiting options every waiting operator and sensor shares, and their one default policy.

See ``docs/operators.md#waiting`` for the table of what each option means and its default.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import conf


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` of the Airflow configuration (``False`` when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))
