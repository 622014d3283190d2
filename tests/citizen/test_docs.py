"""docs/operators.md matches the code: one section per class a DAG uses, exact parameters and defaults, and an
example that builds inside a DAG. A renamed parameter, a new operator or a changed default fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import BaseOperator

import airflow_provider_nairi

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow.models.dag import DAG

try:
    from airflow.triggers.base import BaseTrigger
except ImportError:  # pragma: no cover
    BaseTrigger = None

PACKAGE_DIR = Path(airflow_provider_nairi.__file__).parent
REFERENCE = PACKAGE_DIR.parent / "docs" / "operators.md"
# Shared bases: a DAG never uses them directly; their parameters are documented on each subclass.
BASES = {
    "NairiAdminOperator",
    "NairiBaseOperator",
    "NairiBaseSensor",
    "NairiConversationOperator",
    "NairiConversationSubmitOperator",
    "NairiCorpusOperator",
    "NairiPollingTrigger",
    "NairiResumableOperator",
    "NairiVideoOperator",
}
# Keywords a class sets itself when it calls its base (none since the scheduled job runner stopped inheriting
# the message machinery it had to forbid).
SET_BY_THE_CLASS: dict[str, set[str]] = {}
# ``deferrable`` defaults to Airflow's ``[operators] default_deferrable``; the docs say so instead of a value.
CONF_DEFERRABLE = "`[operators] default_deferrable`"
SECTION = re.compile(r"^### `(\w+)`\n(.*?)(?=^##|\Z)", re.MULTILINE | re.DOTALL)
ROW = re.compile(r"^\| `(\w+)` \| (.+?) \|", re.MULTILINE)
EXAMPLE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def user_facing_classes() -> dict[str, type]:
    found = {}
    for kind in ("operators", "sensors", "triggers"):
        for info in pkgutil.iter_modules([str(PACKAGE_DIR / kind)]):
            module = importlib.import_module(f"airflow_provider_nairi.{kind}.{info.name}")
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__ or name in BASES:
                    continue
                if issubclass(cls, BaseOperator) or (BaseTrigger and issubclass(cls, BaseTrigger)):
                    found[name] = cls
    return found


def parameters(cls: type) -> dict[str, str]:
    """Every keyword the class accepts, with its default as documented: its own ``__init__``'s, then, while
    an ``__init__`` passes ``**kwargs`` on, those of its bases in this package."""
    params: dict[str, str] = {}
    for klass in cls.__mro__:
        if not klass.__module__.startswith("airflow_provider_nairi") or "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
        for name, param in signature.parameters.items():
            if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                params.setdefault(
                    name, "required" if param.default is param.empty else f"`{param.default!r}`"
                )
        if not any(param.kind is param.VAR_KEYWORD for param in signature.parameters.values()):
            break
    return params


SECTIONS = {name: body for name, body in SECTION.findall(REFERENCE.read_text())}
CLASSES = user_facing_classes()


def test_every_class_a_dag_uses_has_a_section_and_every_section_a_class():
    assert sorted(SECTIONS) == sorted(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_section_lists_exactly_the_parameters_with_their_defaults(name):
    documented = dict(ROW.findall(SECTIONS.get(name, "")))
    expected = parameters(CLASSES[name])
    for fixed in SET_BY_THE_CLASS.get(name, ()):
        del expected[fixed]
    if expected.get("deferrable") in ("`False`", "`None`"):
        expected["deferrable"] = CONF_DEFERRABLE
    assert documented == expected


def docstrings(cls: type) -> str:
    """The class's docstring, its bases' in this package, and those of the classes it refers the reader to."""
    module = importlib.import_module(cls.__module__)
    texts = [
        inspect.getdoc(klass) or "" for klass in cls.__mro__ if klass.__module__.startswith(PACKAGE_DIR.name)
    ]
    for referred in re.findall(r":class:`~?(?:[\w.]+\.)?(\w+)`", texts[0]):
        texts.append(inspect.getdoc(getattr(module, referred, None)) or "")
    return "\n".join(texts)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_docstring_documents_each_of_its_own_parameters(name):
    doc = docstrings(CLASSES[name])
    own = [
        p for p in inspect.signature(CLASSES[name].__init__).parameters if p not in ("self", "kwargs", "args")
    ]
    assert [param for param in own if f":param {param}" not in doc and f"``{param}``" not in doc] == []


def refused_on_this_airflow(cls: type) -> bool:
    """A class that needs a newer Airflow refuses to build (tests/ai/test_review_operator.py proves it)."""
    from airflow_provider_nairi.operators import review  # noqa: PLC0415

    return cls is review.NairiReviewOperator and review.HITLOperator is review.BaseOperator


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_section_example_builds_in_a_dag(name):
    if refused_on_this_airflow(CLASSES[name]):
        pytest.skip("needs Airflow 3.1+")
    (example,) = EXAMPLE.findall(SECTIONS[name])
    namespace = dict(vars(importlib.import_module(CLASSES[name].__module__)))
    with DAG(dag_id=f"docs_{name}", schedule=None):
        exec(example, namespace)
    assert any(isinstance(value, CLASSES[name]) for value in namespace.values())


OWN_PAGES = ("index.md", "operators.md", "testing-your-dags.md", "changelog.md")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", OWN_PAGES)
def test_relative_links_resolve(page):
    path = REFERENCE.parent / page
    missing = [
        target
        for target in LINK.findall(path.read_text())
        if "://" not in target and not (path.parent / target).exists()
    ]
    assert missing == []
