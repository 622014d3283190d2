"""What an emulated agent does with one turn: fully determined by its instructions and the user's message.

Directives (anywhere in a message; ``[[delay:S]]`` also in an agent's instructions, for every turn):

- ``[[fail]]`` / ``[[fail:CODE]]`` / ``[[fail:CODE:MESSAGE]]``: the turn ends ``failed`` with that error
  (default code ``agent_error``); no reply message is written.
- ``[[artifact:NAME]]`` / ``[[artifact:NAME:TEXT]]``: the agent produces an artifact called NAME holding TEXT
  (default: ``artifact NAME of CONVERSATION_ID turn N``).
- ``[[delay:SECONDS]]``: the turn takes SECONDS instead of the configured latency (a message's directive wins
  over the instructions').

The reply (the assistant message's ``content``) is, line by line::

    Reply to turn N: <the message without directives, whitespace collapsed>
    Instructions: <first 12 hex digits of sha256(instructions)>
    Attachments: <names of the attached artifacts, comma-separated>     (only when there are some)
    Artifacts: <names of the produced artifacts, comma-separated>       (only when there are some)

Anything that does not match a directive exactly (``[[delay:soon]]``) is ordinary text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

DIRECTIVE = re.compile(
    r"\[\[(?:fail(?::(?P<code>[A-Za-z0-9_.-]+)(?::(?P<message>[^\]]*))?)?"
    r"|artifact:(?P<name>[^\]:]+)(?::(?P<text>[^\]]*))?"
    r"|delay:(?P<delay>\d+(?:\.\d+)?))\]\]"
)
DEFAULT_FAIL_CODE = "agent_error"
#: Longest delay a directive can ask for, in seconds.
MAX_DELAY = 3600.0


@dataclass
class Turn:
    """The plan of one turn."""

    delay: float
    reply: str
    error: dict[str, str] | None = None
    #: ``(name, text or None)`` of the artifacts to produce, in message order.
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)


def directive_delay(text: str) -> float | None:
    delays = [float(m["delay"]) for m in DIRECTIVE.finditer(text) if m["delay"] is not None]
    return min(delays[-1], MAX_DELAY) if delays else None


def plan_turn(instructions: str, content: str, turn: int, attachments: Sequence[str], latency: float) -> Turn:
    """The plan for turn ``turn`` of an agent with ``instructions`` answering ``content``."""
    error = None
    artifacts: list[tuple[str, str | None]] = []
    for found in DIRECTIVE.finditer(content):
        if found["name"] is not None:
            artifacts.append((found["name"].strip(), found["text"]))
        elif found["delay"] is None and error is None:
            error = {
                "code": found["code"] or DEFAULT_FAIL_CODE,
                "message": found["message"] or "The agent failed (asked for by a [[fail]] directive).",
            }
    delay = directive_delay(content)
    if delay is None:
        delay = directive_delay(instructions)
    text = " ".join(DIRECTIVE.sub(" ", content).split())
    lines = [
        f"Reply to turn {turn}: {text}",
        f"Instructions: {hashlib.sha256(instructions.encode()).hexdigest()[:12]}",
    ]
    if attachments:
        lines.append("Attachments: " + ", ".join(attachments))
    if artifacts:
        lines.append("Artifacts: " + ", ".join(name for name, _ in artifacts))
    return Turn(latency if delay is None else delay, "\n".join(lines), error, artifacts)


def default_artifact_text(name: str, conversation_id: str, turn: int) -> str:
    return f"artifact {name} of {conversation_id} turn {turn}\n"
