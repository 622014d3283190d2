"""Typed replies: what an agent's reply must be, how it is read, and what to tell the agent when it is wrong.

Two kinds of expected reply, each with the text that tells the agent what to answer (:meth:`instruction`), a
check of a reply (:meth:`check`, giving a :class:`ReplyCheck`) and, for an invalid one, the message of the
repair turn (:func:`repair_message`):

- :class:`TypedReply`: JSON of an ``output_type`` (a pydantic model, any type a pydantic ``TypeAdapter``
  takes, or a JSON Schema dict). The reply is the whole text, or the first fenced ```` ```json ```` block in
  it; the validated value comes back as JSON (``model_dump(mode="json")`` for a model, the plain value for a
  JSON Schema).
- :class:`BranchReply`: a choice among downstream task ids: the reply is exactly one of them, or a JSON list
  of them.

Never trust the reply: everything it contributes to a repair message or an error (validation errors quote
parts of it) is cut to :data:`MAX_ERRORS` lines of at most :data:`MAX_ERROR_CHARS` characters, so a huge
reply cannot make a huge repair turn or log line. ``NaN`` and ``Infinity`` are not JSON and are refused.

Pure: imports no Airflow (pydantic and jsonschema ship with Airflow, on workers with only the Task SDK too).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from airflow_provider_nairi.exceptions import NairiOutputError, NairiParameterError

__all__ = ["BranchReply", "NairiOutputError", "ReplyCheck", "TypedReply", "repair_message"]

#: Most validation errors quoted in a repair message or an error.
MAX_ERRORS = 10
#: Longest validation error quoted, in characters (longer ones are cut, ending with "…").
MAX_ERROR_CHARS = 300
#: Longest task id list shown in a branch error.
MAX_CHOICES_SHOWN = 20
FENCE = "```"


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, the last one "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(errors: Iterable[str]) -> tuple[str, ...]:
    """At most :data:`MAX_ERRORS` lines of at most :data:`MAX_ERROR_CHARS` each: the first errors and, when
    there were more, a last line saying how many were left out. Bounding twice changes nothing."""
    kept: list[str] = []
    total = 0
    for error in errors:
        total += 1
        if len(kept) < MAX_ERRORS:
            kept.append(shorten(error))
    if total > MAX_ERRORS:
        kept[-1] = f"... and {total - MAX_ERRORS + 1} more"
    return tuple(kept)


@dataclass(frozen=True)
class ReplyCheck:
    """The outcome of checking one reply: ``value`` (JSON) when ``errors`` is empty."""

    value: Any = None
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors


def invalid(*errors: str) -> ReplyCheck:
    return ReplyCheck(errors=bounded(errors))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def fenced_json(reply: str) -> str | None:
    """The content of the first closed ```` ```json ```` block of ``reply``, if any: from the line after the
    opening fence to the next line that starts with ```` ``` ```` (JSON strings cannot hold a raw newline, so
    valid JSON never ends its block early). Other fenced blocks are skipped whole."""
    start = reply.find(FENCE)
    while start != -1:
        line_end = reply.find("\n", start)
        if line_end == -1:
            return None
        close = reply.find("\n" + FENCE, line_end)
        if close == -1:
            return None
        if reply[start + len(FENCE) : line_end].strip().lower() == "json":
            return reply[line_end + 1 : close]
        start = reply.find(FENCE, close + 1 + len(FENCE))
    return None


def decode_json(text: str) -> tuple[Any, str]:
    """The value of JSON ``text`` and ``""``, or ``None`` and the problem in words."""
    try:
        return json.loads(text, parse_constant=_refuse_constant), ""
    except (ValueError, RecursionError) as error:
        return None, shorten(str(error) or type(error).__name__, 120)


def read_json(reply: str | None) -> tuple[Any, tuple[str, ...]]:
    """The JSON value of ``reply``: the whole reply, else its first ```` ```json ```` block; or the errors
    that say why there is none."""
    text = (reply or "").strip()
    if not text:
        return None, ("the reply is empty; reply with the JSON only",)
    value, problem = decode_json(text)
    if not problem:
        return value, ()
    block = fenced_json(text)
    if block is None:
        return None, (
            f"the reply is not JSON ({problem}) and holds no ```json block; reply with the JSON only",
        )
    value, problem = decode_json(block)
    if problem:
        return None, (f"the ```json block is not valid JSON ({problem})",)
    return value, ()


def json_path(location: Iterable[Any]) -> str:
    """``$.items[0].name`` for a location ``("items", 0, "name")``."""
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class TypedReply:
    """A reply that must be JSON of ``output_type``: a pydantic model, any type a pydantic ``TypeAdapter``
    takes (``list[int]``, ``Literal["yes", "no"]``, a ``TypedDict``...), or a JSON Schema dict.

    Built when the DAG is parsed: an ``output_type`` pydantic cannot handle, or an invalid JSON Schema, raises
    :class:`~airflow_provider_nairi.exceptions.NairiParameterError` there.
    """

    def __init__(self, output_type: Any) -> None:
        self.output_type = output_type
        self.adapter: pydantic.TypeAdapter[Any] | None = None
        if isinstance(output_type, dict):
            self.schema = output_type
            self.validator = _schema_validator(output_type)
            return
        try:
            self.adapter = pydantic.TypeAdapter(output_type)
            self.schema = self.adapter.json_schema()
        except (
            pydantic.PydanticUserError,
            pydantic.errors.PydanticSchemaGenerationError,
            TypeError,
        ) as error:
            raise NairiParameterError(
                f"output_type: {output_type!r} is neither a type pydantic can validate nor a JSON Schema "
                f"dict ({shorten(str(error), 200)})."
            ) from error

    def instruction(self) -> str:
        """The text appended to the first message: reply with JSON of the schema, nothing else."""
        schema = json.dumps(self.schema, indent=2, sort_keys=True)
        return (
            "Reply with JSON only: one JSON value and no other text (or that JSON in a single ```json "
            f"block). It must conform to this JSON Schema:\n```json\n{schema}\n```"
        )

    def check(self, reply: str | None) -> ReplyCheck:
        """The validated value as JSON, or the errors (bounded) that say what is wrong."""
        value, errors = read_json(reply)
        if errors:
            return invalid(*errors)
        if self.adapter is None:
            found = self.schema_errors(value)
            if found:
                return invalid(*(f"{json_path(e.absolute_path)}: {e.message}" for e in found))
            return ReplyCheck(value)
        try:  # as JSON (not Python objects), so strict models accept their JSON forms (dates, enums...)
            validated = self.adapter.validate_json(json.dumps(value))
        except pydantic.ValidationError as error:
            return invalid(
                *(
                    f"{json_path(item['loc'])}: {item['msg']}"
                    for item in error.errors(include_url=False, include_input=False, include_context=False)
                )
            )
        return ReplyCheck(self.adapter.dump_python(validated, mode="json"))

    def schema_errors(self, value: Any) -> list[Any]:
        """The JSON Schema's errors for ``value``, by location; a ``$ref`` the schema cannot resolve is a
        parameter error (never fetched)."""
        from referencing.exceptions import Unresolvable  # noqa: PLC0415 (installed with jsonschema)

        try:
            return sorted(self.validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        except Unresolvable as error:
            raise NairiParameterError(
                f"output_type: the JSON Schema has a reference that cannot be resolved: {shorten(str(error))}"
            ) from error


def _schema_validator(schema: dict[str, Any]) -> Any:
    """A jsonschema validator of ``schema`` (its ``$schema`` draft, else the latest); remote ``$ref`` are
    never fetched."""
    import jsonschema  # noqa: PLC0415 (only DAGs with a JSON Schema output_type need it)

    remote = [ref for ref in schema_refs(schema) if not ref.startswith("#")]
    if remote:
        raise NairiParameterError(
            f"output_type: the JSON Schema refers to {shorten(remote[0], 200)!r}; only references inside the "
            "schema (starting with '#') are supported: nothing is fetched."
        )
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise NairiParameterError(
            f"output_type: the JSON Schema is invalid: {shorten(error.message, 200)} "
            f"(at {json_path(error.absolute_path)})."
        ) from error
    return validator_class(schema)


def schema_refs(schema: Any) -> Iterable[str]:
    """Every ``$ref`` string in ``schema``, at any depth."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class BranchReply:
    """A reply that chooses downstream tasks: exactly one of ``task_ids``, or a JSON list of them (at least
    one; repeats are dropped, the order kept). The first message lists the choices."""

    def __init__(self, task_ids: Iterable[str]) -> None:
        self.task_ids = sorted(set(task_ids))
        if not self.task_ids:
            raise NairiParameterError("a branch needs at least one downstream task to choose from.")
        self.choices = frozenset(self.task_ids)

    def instruction(self) -> str:
        """The text appended to the first message: the choices and the reply format."""
        choices = "\n".join(f"- {task_id}" for task_id in self.task_ids)
        return (
            "Choose which of these tasks run next. Reply with exactly one task id, or with a JSON list of "
            f"task ids when several should run, and nothing else:\n{choices}"
        )

    def check(self, reply: str | None) -> ReplyCheck:
        """The chosen task ids, or the errors that say what is wrong."""
        text = (reply or "").strip()
        if text in self.choices:
            return ReplyCheck([text])
        value, errors = read_json(text)
        chosen = [value] if isinstance(value, str) else value
        if (
            errors
            or not isinstance(chosen, list)
            or not chosen
            or not all(isinstance(c, str) for c in chosen)
        ):
            return invalid(
                f"the reply must be exactly one task id or a non-empty JSON list of them; {self.listed()}"
            )
        unknown = [item for item in chosen if item not in self.choices]
        if unknown:
            names = ", ".join(shorten(json.dumps(item), 80) for item in unknown[:3])
            return invalid(f"not a task to choose: {names}; {self.listed()}")
        return ReplyCheck(list(dict.fromkeys(chosen)))

    def listed(self) -> str:
        """``the choices are a, b, c`` (the first :data:`MAX_CHOICES_SHOWN`)."""
        shown = ", ".join(self.task_ids[:MAX_CHOICES_SHOWN])
        more = len(self.task_ids) - MAX_CHOICES_SHOWN
        return f"the choices are {shown}" + (f" and {more} more" if more > 0 else "")


def repair_message(errors: Sequence[str]) -> str:
    """The message of a repair turn: the (bounded) errors, and what to do."""
    lines = "\n".join(f"- {error}" for error in bounded(errors))
    return (
        f"Your previous reply could not be used:\n{lines}\n"
        "Reply again with the corrected answer only, in the format asked for."
    )
