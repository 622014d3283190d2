"""What an emulated agent does with one turn: fully determined by its instructions and the user's message.

Directives (anywhere in a message; ``[[delay:S]]`` also in an agent's instructions, for every turn):

- ``[[fail]]`` / ``[[fail:CODE]]`` / ``[[fail:CODE:MESSAGE]]``: the turn ends ``failed`` with that error
  (default code ``agent_error``); no reply message is written.
- ``[[artifact:NAME]]`` / ``[[artifact:NAME:TEXT]]``: the agent produces an artifact called NAME holding TEXT
  (default: ``artifact NAME of CONVERSATION_ID turn N``).
- ``[[delay:SECONDS]]``: the turn takes SECONDS instead of the configured latency (a message's directive wins
  over the instructions').
- ``[[replies:JSON_LIST]]``: a script: the replies of this turn and the next ones of the conversation, in
  order (a string item is the reply as written, any other JSON value is the reply ``json.dumps(value)``).
  In an agent's instructions it scripts turns 1, 2, ... of every conversation of the agent. A
  conversation's own script wins for the turns it covers; after the last item, turns reply as below again.
  The list is parsed as JSON, so its items may hold ``]``, ``|`` or text that looks like another directive.

The reply (the assistant message's ``content``) is, line by line::

    Reply to turn N: <the message without directives, whitespace collapsed>
    Instructions: <first 12 hex digits of sha256(instructions)>
    Attachments: <names of the attached artifacts, comma-separated>     (only when there are some)
    Artifacts: <names of the produced artifacts, comma-separated>       (only when there are some)

Anything that does not match a directive exactly (``[[delay:soon]]``) is ordinary text.
"""

from __future__ import annotations

import hashlib
import json
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
SCRIPT_OPEN = "[[replies:"
SCRIPT_CLOSE = "]]"
#: Most replies one ``[[replies:...]]`` directive may script (a longer list is ordinary text).
MAX_SCRIPTED = 1000


@dataclass
class Turn:
    """The plan of one turn."""

    delay: float
    reply: str
    error: dict[str, str] | None = None
    #: ``(name, text or None)`` of the artifacts to produce, in message order.
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Script:
    """Scripted replies: ``replies[0]`` answers turn ``first_turn``, the next item the next turn, and so
    on."""

    first_turn: int
    replies: tuple[str, ...]

    def reply_for(self, turn: int) -> str | None:
        index = turn - self.first_turn
        return self.replies[index] if 0 <= index < len(self.replies) else None


def split_script(text: str) -> tuple[str, tuple[str, ...] | None]:
    """``text`` without its ``[[replies:[...]]]`` directives, and the replies of the last one (``None``: no
    directive). A ``[[replies:`` not followed by a JSON list of at most :data:`MAX_SCRIPTED` items and ``]]``
    is ordinary text."""
    decoder = json.JSONDecoder()
    kept: list[str] = []
    replies: tuple[str, ...] | None = None
    position = 0
    start = text.find(SCRIPT_OPEN)
    while start != -1:
        end = -1
        try:
            value, end = decoder.raw_decode(text, start + len(SCRIPT_OPEN))
        except (ValueError, RecursionError):  # not JSON, or nested too deep for the decoder
            value = None
        if isinstance(value, list) and len(value) <= MAX_SCRIPTED and text.startswith(SCRIPT_CLOSE, end):
            kept.append(text[position:start])
            replies = tuple(item if isinstance(item, str) else json.dumps(item) for item in value)
            position = end + len(SCRIPT_CLOSE)
            start = text.find(SCRIPT_OPEN, position)
        else:
            start = text.find(SCRIPT_OPEN, start + 1)
    kept.append(text[position:])
    return " ".join(kept), replies


def directive_delay(text: str) -> float | None:
    delays = [float(m["delay"]) for m in DIRECTIVE.finditer(text) if m["delay"] is not None]
    return min(delays[-1], MAX_DELAY) if delays else None


def plan_turn(
    instructions: str,
    content: str,
    turn: int,
    attachments: Sequence[str],
    latency: float,
    *,
    script: Script | None = None,
) -> Turn:
    """The plan for turn ``turn`` of an agent with ``instructions`` answering ``content``; ``script``: the
    conversation's scripted replies (see :func:`conversation_script`), which win over the instructions'."""
    instructions_text, instructions_replies = split_script(instructions)
    content, _ = split_script(content)
    scripted = script.reply_for(turn) if script is not None else None
    if scripted is None and instructions_replies is not None:
        scripted = Script(1, instructions_replies).reply_for(turn)
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
        delay = directive_delay(instructions_text)
    text = " ".join(DIRECTIVE.sub(" ", content).split())
    lines = [
        f"Reply to turn {turn}: {text}",
        f"Instructions: {hashlib.sha256(instructions.encode()).hexdigest()[:12]}",
    ]
    if attachments:
        lines.append("Attachments: " + ", ".join(attachments))
    if artifacts:
        lines.append("Artifacts: " + ", ".join(name for name, _ in artifacts))
    reply = "\n".join(lines) if scripted is None else scripted
    return Turn(latency if delay is None else delay, reply, error, artifacts)


def conversation_script(content: str, turn: int, current: Script | None) -> Script | None:
    """The conversation's script once user message ``content`` starts turn ``turn``: the message's own
    ``[[replies:...]]`` (from this turn on), else the script it had."""
    _, replies = split_script(content)
    return current if replies is None else Script(turn, replies)


def default_artifact_text(name: str, conversation_id: str, turn: int) -> str:
    return f"artifact {name} of {conversation_id} turn {turn}\n"
