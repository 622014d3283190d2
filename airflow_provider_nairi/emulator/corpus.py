"""Transcripts into timed segments, and BM25 scoring over them (what ``/search``, ``/recall``, ``/chat`` use).

Transcript formats, chosen by the uploaded file's extension:

- ``.srt`` and ``.vtt``: cues (``00:00:01,000 --> 00:00:04,000`` or ``00:01.000 --> 00:04.000``, hours
  optional) with their text; cue numbers, ``WEBVTT`` headers, ``NOTE`` blocks and ``<tags>`` are dropped.
- ``.txt``: one segment per non-empty line. A line may start with ``[hh:mm:ss]`` or ``[mm:ss]``: its start
  time; an untimed line starts where the previous segment ends (the first at 0). A segment ends where the next
  line's time stamp says, when that is later; otherwise 5 seconds after it starts.

Scoring is Okapi BM25 (k1 = 1.5, b = 0.75) over lowercase word tokens, with the documents being segments
(search, chat) or windows of three consecutive segments of one video (recall).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

TRANSCRIPT_SUFFIXES = (".txt", ".vtt", ".srt")
DEFAULT_SEGMENT = 5.0
K1 = 1.5
B = 0.75

CUE_TIME = re.compile(
    r"^\s*((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)"
)
LINE_TIME = re.compile(r"^\s*\[((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)\]\s*")
TAG = re.compile(r"<[^>]*>")
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str


def seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    return round(sum(float(p) * 60.0**i for i, p in enumerate(reversed(parts))), 3)


def parse_cues(text: str) -> list[Segment]:
    """Segments of an SRT or WebVTT file."""
    segments = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = block.strip().split("\n")
        for index, line in enumerate(lines):
            timing = CUE_TIME.match(line)
            if timing:
                words = " ".join(TAG.sub("", rest).strip() for rest in lines[index + 1 :]).strip()
                if words:
                    segments.append(Segment(seconds(timing[1]), seconds(timing[2]), words))
                break
    return segments


def parse_lines(text: str) -> list[Segment]:
    """Segments of a plain-text transcript (see the module docstring for the timing rule)."""
    lines: list[tuple[float | None, str]] = []
    for line in text.splitlines():
        stamp = LINE_TIME.match(line)
        words = line[stamp.end() :].strip() if stamp else line.strip()
        if words:
            lines.append((seconds(stamp[1]) if stamp else None, words))
    segments: list[Segment] = []
    clock = 0.0
    for index, (start, words) in enumerate(lines):
        begin = clock if start is None else start
        following = lines[index + 1][0] if index + 1 < len(lines) else None
        end = following if following is not None and following > begin else begin + DEFAULT_SEGMENT
        segments.append(Segment(begin, round(end, 3), words))
        clock = round(end, 3)
    return segments


def parse_transcript(filename: str, data: bytes) -> list[Segment]:
    """The timed segments of a transcript file; ``ValueError`` when it is not UTF-8 or has no text."""
    text = data.decode("utf-8-sig")
    segments = parse_lines(text) if filename.lower().endswith(".txt") else parse_cues(text)
    if not segments:
        raise ValueError("the transcript has no text")
    return segments


def tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def bm25(query: str, documents: Sequence[str]) -> list[float]:
    """The BM25 score of every document for ``query`` (0 when no query word occurs)."""
    terms = set(tokens(query))
    bags = [Counter(tokens(d)) for d in documents]
    if not terms or not bags:
        return [0.0] * len(documents)
    average = sum(sum(b.values()) for b in bags) / len(bags) or 1.0
    frequency = {t: sum(1 for b in bags if t in b) for t in terms}
    count = len(bags)
    scores = []
    for bag in bags:
        length = sum(bag.values())
        score = 0.0
        for term in terms:
            hits = bag.get(term, 0)
            if hits:
                idf = math.log(1 + (count - frequency[term] + 0.5) / (frequency[term] + 0.5))
                score += idf * hits * (K1 + 1) / (hits + K1 * (1 - B + B * length / average))
        scores.append(round(score, 4))
    return scores
