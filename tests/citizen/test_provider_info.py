"""Provider registration: valid for the installed Airflow, complete, and every name it gives imports."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from unittest import mock

import airflow
import jsonschema
import pytest
from airflow.providers.common.compat.sdk import BaseOperatorLink

import airflow_provider_nairi
from airflow_provider_nairi import __version__
from airflow_provider_nairi.get_provider_info import get_provider_info

INFO = get_provider_info()
SCHEMA = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
KINDS = ("hooks", "operators", "sensors", "triggers")


def listed_modules(kind: str) -> list[str]:
    return [module for entry in INFO.get(kind, []) for module in entry["python-modules"]]


def import_class(dotted: str) -> type:
    module_name, _, class_name = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def test_valid_against_the_installed_airflow_schema():
    jsonschema.validate(INFO, SCHEMA)
    assert INFO["package-name"] == "airflow-provider-nairi"
    assert INFO["versions"] == [__version__]


def test_the_entry_point_airflow_reads_is_this_function():
    (entry_point,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_nairi")
    ]
    assert entry_point.load() is get_provider_info


@pytest.mark.parametrize("kind", KINDS)
def test_every_listed_module_imports(kind):
    for module in listed_modules(kind):
        importlib.import_module(module)


@pytest.mark.parametrize("kind", KINDS)
def test_every_module_of_the_package_is_listed(kind):
    """A module that lands in operators/, sensors/, triggers/ or hooks/ unregistered fails here."""
    package = Path(airflow_provider_nairi.__file__).parent / kind
    on_disk = {
        f"airflow_provider_nairi.{kind}.{info.name}"
        for info in pkgutil.iter_modules([str(package)])
        if not info.name.startswith("_")
    }
    assert on_disk == set(listed_modules(kind))


def test_every_task_decorator_imports_and_every_decorator_module_is_listed():
    names = {entry["name"]: entry["class-name"] for entry in INFO["task-decorators"]}
    assert sorted(names) == ["nairi", "nairi_branch"]
    for dotted in names.values():
        assert callable(import_class(dotted))
    package = Path(airflow_provider_nairi.__file__).parent / "decorators"
    on_disk = {
        f"airflow_provider_nairi.decorators.{info.name}" for info in pkgutil.iter_modules([str(package)])
    }
    assert on_disk == {dotted.rpartition(".")[0] for dotted in names.values()}


def test_connection_type_names_an_importable_hook_of_that_type():
    for conn in INFO.get("connection-types", []):
        hook = import_class(conn["hook-class-name"])
        assert hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]


def test_every_extra_link_is_an_operator_link_and_every_link_class_is_listed():
    listed = set(INFO.get("extra-links", []))
    for dotted in listed:
        assert issubclass(import_class(dotted), BaseOperatorLink)
    if (Path(airflow_provider_nairi.__file__).parent / "links.py").exists():
        links = importlib.import_module("airflow_provider_nairi.links")
        defined = {
            f"{links.__name__}.{name}"
            for name, value in inspect.getmembers(links, inspect.isclass)
            if issubclass(value, BaseOperatorLink)
            and value.__module__ == links.__name__
            and isinstance(getattr(value, "name", None), str)  # a base without a name is no link
        }
        assert defined == listed


def test_calling_it_imports_no_airflow_and_no_http_library():
    """It runs at every airflow command: it must stay pure data."""
    code = (
        "import sys\n"
        "from airflow_provider_nairi.get_provider_info import get_provider_info\n"
        "get_provider_info()\n"
        "heavy = ('airflow', 'requests', 'aiohttp', 'tenacity', 'pytest')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_airflow_builds_the_connection_form_with_every_extra():
    """3.2+ reads ``conn-fields`` and ``ui-field-behaviour``, 2.11 the hook's form methods: same fields."""
    if airflow.__version__.startswith(("3.0.", "3.1.")) and importlib.util.find_spec("wtforms") is None:
        pytest.skip(
            "Airflow 3.0/3.1 build these widgets from the hook's form methods, which need wtforms (the FAB "
            "provider); the 3.1 UI does without it: see test_the_airflow_3_ui_form_shows_every_extra_..."
        )
    from airflow.providers_manager import ProvidersManager  # noqa: PLC0415 (initialises every provider)

    manager = ProvidersManager()
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__nairi__")}
    (conn,) = INFO["connection-types"]
    assert widgets == {f"extra__nairi__{field}" for field in conn["conn-fields"]}
    behaviour = manager.field_behaviours["nairi"]
    assert behaviour["hidden_fields"] == conn["ui-field-behaviour"]["hidden-fields"]
    assert behaviour["relabeling"] == conn["ui-field-behaviour"]["relabeling"]


@pytest.mark.skipif(airflow.__version__.startswith("2."), reason="Airflow 2.11's form is the FAB one, above")
def test_the_airflow_3_ui_form_shows_every_extra_and_field_label():
    """What the Add/Edit Connection form of Airflow 3 is built from (the UI's ``hook_meta`` answer): on 3.0
    and 3.1 the hook's form methods run under the UI's stand-ins for FAB, on 3.2+ ``conn-fields`` is read."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService  # noqa: PLC0415

    try:
        hooks = HookMetaService.hook_meta_data()
    finally:  # the 3.1+ UI leaves MagicMock stand-ins for absent FAB modules in sys.modules; others need none
        for name in [name for name, module in sys.modules.items() if isinstance(module, mock.MagicMock)]:
            del sys.modules[name]
    (meta,) = [hook for hook in hooks if hook.connection_type == "nairi"]
    (conn,) = INFO["connection-types"]
    extras = meta.extra_fields or {}
    assert set(extras) == set(conn["conn-fields"])
    for name, field in extras.items():
        assert (field["schema"]["title"], field["description"]) == (
            conn["conn-fields"][name]["label"],
            conn["conn-fields"][name]["description"],
        )
    behaviour = conn["ui-field-behaviour"]
    standard = meta.standard_fields.model_dump()
    standard["schema"] = standard.pop("url_schema")
    assert {name for name, field in standard.items() if field and field["hidden"]} == set(
        behaviour["hidden-fields"]
    )
    for name, label in behaviour["relabeling"].items():
        assert (standard[name]["title"], standard[name]["placeholder"]) == (
            label,
            behaviour["placeholders"][name],
        )
