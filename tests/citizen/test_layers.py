"""The package's layers import only downwards, and features never sideways (docs/design.md, "Layers").

``core < client < resources < hooks < glue < features``. The pure layers (core, client, resources) never
import Airflow. Among the features (operators, sensors, triggers, decorators): no sensor imports an operator,
no trigger an operator or a sensor; a module imports of its own kind only that kind's bases (and the
org-as-code base :mod:`~airflow_provider_nairi.operators.admin` for the org-as-code operators);
any feature may defer to any trigger. Lazy and ``TYPE_CHECKING`` imports count too:
a dependency is a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import airflow_provider_nairi

PACKAGE = Path(airflow_provider_nairi.__file__).parent
LAYERS = ("core", "client", "resources", "hooks", "glue", "features")
LAYER_OF = {
    "exceptions": "core",
    "validation": "core",
    "idempotency": "core",
    "client": "client",
    "resources": "resources",
    "hooks": "hooks",
    "outcomes": "glue",
    "options": "glue",
    "hook_mixin": "glue",
    "sources": "glue",
    "links": "glue",
    "lineage": "glue",
    "retry_policy": "glue",
    "operators": "features",
    "sensors": "features",
    "triggers": "features",
    "decorators": "features",
}
PURE = {"core", "client", "resources"}
#: Modules a feature module may import from its own kind.
BASES = {"operators.base", "operators.waiting", "sensors.base", "triggers.polling"}
#: Shared bases beyond BASES, and who may import them.
SHARED = {
    "operators.admin": {"operators.agents", "operators.secrets", "operators.scheduled_jobs"},
    # @task.nairi and the review operator are conversation operators (they subclass or compose them).
    "operators.conversation": {"decorators.nairi", "operators.review"},
}
#: Modules that only re-export classes from their new homes (old public import paths).
FACES = {"operators.content", "sensors.content"}
#: Today's violations, each removed by the step that fixes it (docs/changelog.md); empty when the layers hold.
KNOWN: set[tuple[str, str]] = set()


def imported(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def violations(package: Path = PACKAGE) -> Iterator[tuple[str, str]]:
    for path in sorted(package.rglob("*.py")):
        here = path.relative_to(package).with_suffix("").as_posix().replace("/", ".")
        kind_here = here.split(".")[0]
        layer = LAYER_OF.get(kind_here)
        if layer is None:  # emulator, testing, get_provider_info, __init__: outside the layers
            continue
        for name in imported(path):
            if name.split(".")[0] == "airflow":
                if layer in PURE:
                    yield here, name
                continue
            if not name.startswith("airflow_provider_nairi."):
                continue
            there = name.removeprefix("airflow_provider_nairi.")
            kind = there.split(".")[0]
            module = ".".join(there.split(".")[:2])
            layer_there = LAYER_OF.get(kind)
            if layer_there is None or LAYERS.index(layer_there) > LAYERS.index(layer):
                yield here, name  # upward, or into the emulator / testing kit
            elif (
                layer == layer_there == "features"
                and module != here
                and not (
                    (kind == "triggers" and kind_here != "triggers")  # deferring is allowed
                    or (module in BASES and kind == kind_here)  # the own kind's bases
                    or here in SHARED.get(module, ())
                    or here in FACES
                )
            ):
                yield here, name  # sideways


def test_imports_only_go_down_and_never_sideways() -> None:
    assert set(violations()) == KNOWN


def test_the_checker_sees_upward_sideways_and_impure_imports(tmp_path: Path) -> None:
    """The checker itself can fail: a client importing a hook or Airflow, a sensor an operator."""
    (tmp_path / "client").mkdir()
    (tmp_path / "client" / "sync.py").write_text(
        "import airflow.models\nif False:\n    from airflow_provider_nairi.hooks.nairi import NairiHook\n"
    )
    (tmp_path / "sensors").mkdir()
    (tmp_path / "sensors" / "video.py").write_text(
        "from airflow_provider_nairi.operators.video import NairiUploadVideoOperator\n"
        "from airflow_provider_nairi.sensors.base import NairiBaseSensor\n"
        "from airflow_provider_nairi.triggers.video import NairiVideoTrigger\n"
    )
    assert set(violations(tmp_path)) == {
        ("client.sync", "airflow.models"),
        ("client.sync", "airflow_provider_nairi.hooks.nairi"),
        ("sensors.video", "airflow_provider_nairi.operators.video"),
    }
