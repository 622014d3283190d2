"""Every public method of the hooks (also those inherited from ``NairiApi``) says what a user must know."""

from __future__ import annotations

import inspect
from functools import cached_property

import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_nairi.hooks.nairi import NairiAsyncHook, NairiHook


def _public_methods(cls: type) -> list[str]:
    """Public callables and properties of ``cls`` that are not Airflow's ``BaseHook``'s (or ``object``'s)
    unchanged."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attribute = inspect.getattr_static(cls, name)
        if hasattr(BaseHook, name) and attribute is inspect.getattr_static(BaseHook, name):
            continue
        if callable(attribute) or isinstance(
            attribute, (property, cached_property, classmethod, staticmethod)
        ):
            names.append(name)
    return names


CASES = [(cls, name) for cls in (NairiHook, NairiAsyncHook) for name in _public_methods(cls)]


def test_the_endpoint_methods_are_checked():
    checked = {f"{cls.__name__}.{name}" for cls, name in CASES}
    assert {"NairiHook.create_agent", "NairiHook.reprocess_video", "NairiHook.list_env_vars"} <= checked
    assert {"NairiAsyncHook.get_conversation", "NairiAsyncHook.close"} <= checked
    assert "NairiHook.get_connection" not in checked  # BaseHook's own, unchanged


@pytest.mark.parametrize(("cls", "name"), CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
def test_public_method_has_a_docstring(cls, name):
    assert inspect.getdoc(getattr(cls, name)), f"{cls.__name__}.{name} has no docstring"
