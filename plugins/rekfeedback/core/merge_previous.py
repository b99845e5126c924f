"""The previous manifest joined with this turn's answers, in source-ref order.

Two walks over the (sorted) previous lines:
- ``carry_forward``: the manifest is the one the previous merge wrote (its digest matches that
  merge's record, ``core.merge_record``), so its lines are written as they are; only the line of an
  image with a new answer is read, to rank it against the answer and, if replaced, uncount it;
- ``validate_previous``: any other manifest; every line is validated (``core.validation``), a line
  Rekognition would refuse is rebuilt in our form if that makes it valid, else rejected; an image
  that appears twice keeps its newest human-annotated line.
Either way a human answer replaces the image's line unless that line holds a newer human
annotation, an auto-accepted answer never replaces a human-annotated line, and an answer that
cannot be written leaves the previous line in place.
"""

from __future__ import annotations

import bisect
import itertools
import json
from typing import Iterable, Iterator, Mapping

from rekfeedback.core.manifest import Detection, build_record, dumps, parse_record
from rekfeedback.core.merge_sort import source_ref_of
from rekfeedback.core.merge_state import MergeState, screen_boxes
from rekfeedback.core.validation import (
    ERROR_INVALID_JSON_LINE,
    ERROR_MISSING_SOURCE_REF,
    MAX_LINE_CHARS,
    TERMINAL_DUPLICATE_SOURCE_REF,
    TERMINAL_LINE_TOO_LONG,
    validate_line,
    validate_record,
)

_CHUNK_LINES = 4096  # previous lines carried forward together
_FLUSH_LINES = 4096  # output lines joined into one write


class _Answers:
    """This turn's images in source-ref order, written as the walk over the previous lines passes them."""

    def __init__(self, state: MergeState):
        self.state = state
        self.refs = sorted(state.winners)
        self.next = 0

    def before(self, ref: str) -> bool:
        """Write the new images that sort before ``ref``; whether ``ref`` itself has an answer (then taken)."""
        refs, i = self.refs, self.next
        while i < len(refs) and refs[i] < ref:
            self.state.apply_answer(refs[i], replaces=False)
            i += 1
        pending = i < len(refs) and refs[i] == ref
        self.next = i + 1 if pending else i
        return pending

    def finish(self) -> None:
        for ref in self.refs[self.next:]:
            self.state.apply_answer(ref, replaces=False)
        self.next = len(self.refs)


def carry_forward(state: MergeState, lines: Iterable[str], record: Mapping) -> None:
    """Join the previous merge's own manifest (lines without newlines), trusting its record."""
    state.label_images.update(record["label_images"])
    state.c["verified_empty"] += record["verified_empty"]
    answers = _Answers(state)
    new_refs, out = answers.refs, state.out
    source = iter(lines)
    while chunk := list(itertools.islice(source, _CHUNK_LINES)):
        refs = list(map(source_ref_of, chunk))
        kept, k = len(chunk), 0
        while answers.next < len(new_refs) and new_refs[answers.next] <= refs[-1]:
            ref = new_refs[answers.next]
            at = bisect.bisect_left(refs, ref, k)
            out += itertools.islice(chunk, k, at)
            if refs[at] != ref:  # a new image
                state.apply_answer(ref, replaces=False)
                answers.next += 1
                k = at
                continue
            answers.next += 1
            previous = json.loads(chunk[at])
            if state.apply_answer(ref, replaces=True, previous_rank=previous_rank(previous)):
                state.count_labels(validate_record(previous).labels, -1)
                kept -= 1
            else:
                out.append(chunk[at])
            k = at + 1
        out += itertools.islice(chunk, k, None)
        state.lines_written += kept
        state.c["previous_lines"] += kept
        state.c["previous_kept"] += kept
        state.discard_waiting(refs)
        state.flush(at_least=_FLUSH_LINES)
    answers.finish()
    state.flush()


def validate_previous(state: MergeState, lines: Iterator[str]) -> None:
    """Join a previous manifest of unknown origin (lines without newlines, sorted by source-ref)."""
    answers = _Answers(state)
    last = ""
    for ref, group in itertools.groupby(lines, key=source_ref_of):
        group = list(group)
        if ref is not None and ref == last:
            # Same image again after an unreadable line split its group: already written once.
            for line in group:
                state.reject("previous", TERMINAL_DUPLICATE_SOURCE_REF,
                             "image appears more than once in the previous manifest; kept the first",
                             source_ref=ref, text=line)
            continue
        pending = False
        if ref is not None:
            last = max(ref, last)
            pending = answers.before(ref)
        _image(state, ref, group, pending)
        state.flush(at_least=_FLUSH_LINES)
    answers.finish()
    state.flush()


def _image(state: MergeState, ref: str | None, lines: list[str], answer_pending: bool) -> None:
    """One image's previous lines (or lines without a usable source-ref)."""
    parsed = []
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            state.reject("previous", TERMINAL_LINE_TOO_LONG, f"line has {len(line)} characters (max {MAX_LINE_CHARS})",
                         source_ref=ref, text=line)
            continue
        try:
            parsed.append((line, json.loads(line)))
        except ValueError as exc:
            state.reject("previous", ERROR_INVALID_JSON_LINE, f"not valid JSON: {exc}", text=line)
    if ref is None:
        for line, record in parsed:  # valid JSON but no usable source-ref
            check = validate_record(record, state.bucket, len(line))
            code, message = (check.errors[0].code, check.errors[0].message) if check.errors else (ERROR_MISSING_SOURCE_REF, "no source-ref")
            state.reject("previous", code, message, text=line)
        return
    if not parsed:
        if answer_pending:
            state.apply_answer(ref, replaces=False)
        return
    if len(parsed) > 1:
        parsed.sort(key=lambda item: previous_rank(item[1]) + (item[0],), reverse=True)
        for line, _ in parsed[1:]:
            state.reject("previous", TERMINAL_DUPLICATE_SOURCE_REF,
                         "image appears more than once in the previous manifest; kept the newest human-annotated line",
                         source_ref=ref, text=line)
    line, record = parsed[0]
    if answer_pending and state.apply_answer(ref, replaces=True, previous_rank=previous_rank(record)):
        return
    state.c["previous_lines"] += 1
    check = validate_record(record, state.bucket, len(line))
    if check.ok:
        state.keep(ref, line, check.labels)
        state.c["previous_kept"] += 1
        return
    canonical = _canonical(record)
    if canonical is not None:
        rebuilt, dropped = canonical
        again = validate_line(rebuilt, state.bucket)
        if again.ok:
            for box, code, reason in dropped:
                state.drop_box(code, reason, box, file="previous manifest", line_no=None, source_ref=ref)
            state.keep(ref, rebuilt, again.labels)
            state.c["previous_rewritten"] += 1
            return
    first = check.errors[0]
    state.reject("previous", first.code, first.message, source_ref=ref, text=line, issues=check.issues)


def previous_rank(record) -> tuple[bool, str]:
    """(human-annotated, newest creation date) of a previous line, to rank it against an answer."""
    try:
        entry, _ = parse_record(record)
    except (ValueError, TypeError, KeyError, AttributeError):
        return (False, "")
    return (entry.human, entry.newest_date)


def _canonical(record) -> tuple[str, list] | None:
    """The line rebuilt in our form, leaving out attributes Rekognition does not train on and boxes it
    would refuse (a verified line written by another tool keeps its good boxes); with the dropped boxes."""
    try:
        entry, _ = parse_record(record)
        dropped: list = []
        if entry.detection and entry.detection.boxes and entry.width and entry.height:
            boxes, dropped = screen_boxes(entry.detection.boxes, entry.width, entry.height)
            if dropped:
                entry.detection = Detection(boxes, entry.detection.provenance)
        return dumps(build_record(entry)), dropped
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
