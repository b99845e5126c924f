"""Merge a turn's normalized answers into the cumulative Rekognition manifest, streaming.

Inputs are line iterables, outputs are callables taking text (the manifest's in runs of whole
lines, a reject one line at a time, each line with its newline), so the same code runs on local
files, S3 streams or lists in tests.

Rules (docs/data-formats.md, issue 6):
- one answer per image wins: a human answer beats an auto-accepted one; among equals the newest
  ``answered_at`` wins, then the larger ``answer_id`` (then the line text), so any order and any
  repetition of the inputs gives the same result;
- against the previous manifest: a human answer replaces the image's line unless that line holds a
  newer human annotation; an auto-accepted answer never replaces a human-annotated line; an answer
  that cannot be written leaves the previous line in place (nothing verified earlier is lost);
- unlabelled images are counted and never written as labelled;
- output is sorted by source-ref and every written line passes ``core.validation``; invalid lines
  go to the rejects with their reason.

Memory: the winning answers (one per distinct new image) and the set of unlabelled images are held
in memory; the previous manifest is streamed. If it is not already sorted (ours always is), it is
sorted externally in runs of ``chunk_lines`` spilled to a temporary directory.

Speed: the previous manifest is most of the input and mostly lines this merge wrote, so those are
checked in chunks with C loops (``join``); answers are read with orjson.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import heapq
import itertools
import json
import operator
import os
import re
import tempfile
from collections import Counter
from typing import Callable, Iterable, Iterator

import orjson

from rekfeedback.core.consensus import is_pending
from rekfeedback.core.manifest import (
    Detection,
    ImageEntry,
    ImageLabel,
    Provenance,
    assemble,
    build_record,
    dumps,
    encode,
    manifest_date,
    parse_record,
)
from rekfeedback.core.ranking import Ranking, answer_rank
from rekfeedback.core.validation import (
    BUCKET_GROUP,
    ERROR_INVALID_JSON_LINE,
    ERROR_MISSING_SOURCE_REF,
    ERROR_INVALID_SOURCE_REF_FORMAT,
    MAX_LINE_CHARS,
    TERMINAL_DUPLICATE_SOURCE_REF,
    REF_GROUP,
    SIMPLE_GROUPS,
    TERMINAL_LINE_TOO_LONG,
    box_problem,
    boxes_labels,
    bucket_of,
    canonical_match,
    fast_check,
    match_labels,
    simple_labels,
    validate_line,
    validate_record,
)

DEFAULT_MAX_REJECT_RATIO = 0.2  # Rekognition refuses a manifest with more than 20% invalid lines
DEFAULT_CHUNK_LINES = 200_000
INVALID_ANSWER = "INVALID_ANSWER"
MAX_MANIFEST_LINES = 250_000  # manifest-based training limit; datasets via UpdateDatasetEntries have none
MAX_LABELS = 250

LineSource = tuple[str, Iterable[str]]  # (name used in messages, e.g. the S3 URI; its lines)
Writer = Callable[[str], object]
_FAST_PREFIX = '{"source-ref":"'
_FLUSH_LINES = 4096  # output lines joined into one write
_CHUNK_LINES = 512  # previous lines handled together
_ref_of_match = operator.itemgetter(REF_GROUP)
_HEAD = operator.methodcaller("group", *SIMPLE_GROUPS[:3])  # (width, amore, bmore)
_NO_HEAD = (None, None, None)  # no boxes, at most two labels: simple_labels
_MORE = operator.itemgetter(1, 2)  # (None, None): at most two labels and three boxes
_NO_MORE = (None, None)
_CLASS_ROW = operator.methodcaller("group", *SIMPLE_GROUPS[3:])  # simple_labels' arguments
_DIGIT_MASK = bytes(49 if 48 <= b <= 57 else 48 for b in range(256))  # digits to b"1", all else to b"0"
_NINETEEN_DIGITS = b"1" * 19


def _loads(text: str):
    """json.loads, by orjson where the two read the same (orjson refuses NaN and lone surrogates, and
    reads integers beyond 64 bits as floats: those texts, and invalid ones for json's message, go to json)."""
    # A C-speed test for a run of 19 digits (a regex takes several times as long as the parse).
    if _NINETEEN_DIGITS not in text.encode("utf-8", "surrogatepass").translate(_DIGIT_MASK):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


class RejectThresholdExceeded(ValueError):
    """More rejected lines than Rekognition would accept; the summary says which and why."""


def source_ref_of(line: str) -> str | None:
    """The line's source-ref, cheaply for our own canonical lines (which start with it)."""
    if line.startswith(_FAST_PREFIX):
        end = line.find('"', 15)
        if end > 15 and line.find("\\", 15, end) < 0:
            return line[15:end]
    try:
        record = json.loads(line)
    except ValueError:
        return None
    ref = record.get("source-ref") if isinstance(record, dict) else None
    return ref if isinstance(ref, str) else None


def _sort_key(line: str):
    return (source_ref_of(line) or "", line)


class _Merge:
    def __init__(self, write_manifest: Writer, write_reject: Writer, images_bucket: str | None):
        self.write_manifest = write_manifest
        self.write_reject = write_reject
        self.bucket = images_bucket
        # ref -> the image's answers as (text, file, line no): the text is kept, not the parsed answer (a
        # dict per image costs three times the memory); the answers that are written are parsed again.
        self.winners: Ranking[tuple[str, str, int]] = Ranking()
        self.unlabelled: set[str] = set()
        self.unresolved: set[str] = set()  # objects a review backend left without an answer (Ground Truth: no consensus)
        self.c: Counter = Counter()
        self.reject_codes: Counter = Counter()
        self.labels: dict[str, Counter] = {}
        self.label_images: Counter = Counter()  # images per label in the written manifest
        self.lines_written = 0
        self.out: list[str] = []  # manifest lines not yet written, without their newline
        # Kept previous lines counted by their label groups (see _verdicts), added up by _count_rows.
        self.class_rows: Counter = Counter()
        self.seen_rows: set = set()
        self.bad_rows: set = set()

    def flush(self) -> None:
        if self.out:
            self.write_manifest("\n".join(self.out) + "\n")
            self.out.clear()

    # -- rejects -------------------------------------------------------------------------------
    def reject(self, stage: str, code: str, reason: str, *, file=None, line_no=None, source_ref=None,
               text=None, issues=None) -> None:
        self.c["rejects"] += 1
        self.reject_codes[code] += 1
        row = {"stage": stage, "code": code, "reason": reason, "source-ref": source_ref}
        if file is not None:
            row.update(file=file, line=line_no)
        if issues:
            row["issues"] = [i.as_dict() for i in issues]
        if text is not None:
            row["text"] = text[:2000]
        self.write_reject(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")

    def drop_box(self, code: str, reason: str, box: dict, *, file, line_no, source_ref) -> None:
        """One box left out of a written answer: listed with the rejects, counted apart (the line is kept)."""
        self.c["boxes_dropped"] += 1
        row = {"stage": "box", "code": code, "reason": reason, "source-ref": source_ref, "box": box,
               "file": file, "line": line_no}
        self.write_reject(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")

    # -- inputs --------------------------------------------------------------------------------
    def read_answers(self, sources: Iterable[LineSource]) -> None:
        for name, lines in sources:
            for n, raw in enumerate(lines, 1):
                text = raw.strip()
                if text:
                    self._read_answer(name, n, text)

    def _read_answer(self, name: str, n: int, text: str) -> None:
        self.c["answers_read"] += 1
        where = {"file": name, "line_no": n, "text": text}
        try:
            answer = _loads(text)
        except ValueError as exc:
            return self.reject("answers", ERROR_INVALID_JSON_LINE, f"answer is not JSON: {exc}", **where)
        if not isinstance(answer, dict):
            return self.reject("answers", ERROR_INVALID_JSON_LINE, "answer is not a JSON object", **where)
        ref = answer.get("source-ref")
        if not isinstance(ref, str) or not ref:
            return self.reject("answers", ERROR_MISSING_SOURCE_REF, "answer has no source-ref", **where)
        if bucket_of(ref) is None:
            return self.reject("answers", ERROR_INVALID_SOURCE_REF_FORMAT,
                               f"source-ref {ref!r} is not s3://bucket/key", source_ref=ref, **where)
        try:
            rank = answer_rank(answer)
        except ValueError:
            return self.reject("answers", INVALID_ANSWER,
                               f"answered_at {answer.get('answered_at')!r} is not an ISO-8601 date; the merge never invents one",
                               source_ref=ref, **where)
        if is_pending(answer):
            # Reviewers disagreed (agreement below agreement_threshold): never merged as verified; the
            # review round answers it again, or a later turn does (its image stays out of the manifest).
            self.c["answers_pending"] += 1
            return None
        outcome = self.winners.offer(ref, rank, (text, name, n))
        if outcome != "new":
            self.c[f"answers_{outcome}"] += 1

    def read_unlabelled(self, sources: Iterable[LineSource], into: set[str] | None = None,
                        stage: str = "unlabelled") -> None:
        """The images of items that got no label: counted (those still without a line at the end), never written."""
        into = self.unlabelled if into is None else into
        for name, lines in sources:
            for n, raw in enumerate(lines, 1):
                text = raw.strip()
                if not text:
                    continue
                try:
                    ref = _loads(text).get("source-ref")
                except (ValueError, AttributeError):
                    ref = None
                if isinstance(ref, str) and ref:
                    into.add(ref)
                else:
                    self.reject(stage, ERROR_MISSING_SOURCE_REF, f"{stage} item has no source-ref",
                                file=name, line_no=n, text=text)

    # -- writing -------------------------------------------------------------------------------
    def _count_labels(self, labels, sign: int) -> None:
        """Count (sign 1) or uncount (sign -1) a kept line's labels."""
        label_images = self.label_images
        for name in labels:
            count = label_images[name] + sign
            if count:
                label_images[name] = count
            else:
                del label_images[name]
        if not labels:
            self.c["verified_empty"] += sign

    def _count_rows(self) -> None:
        for row, count in self.class_rows.items():
            if count:
                self._count_labels(simple_labels(*row), count)
        self.class_rows.clear()

    def _written(self, ref: str, labels: set[str]) -> None:
        self.lines_written += 1
        if self.unlabelled:
            self.unlabelled.discard(ref)
        if self.unresolved:
            self.unresolved.discard(ref)
        if labels:
            self.label_images.update(labels)
        else:
            self.c["verified_empty"] += 1

    def emit_answer(self, ref: str, previous_rank: tuple[bool, str] | None = None) -> bool:
        """Write the best answer for the image that can become a valid line; False if none can.

        With ``previous_rank`` (the image's line in the previous manifest), only answers that beat
        that line are tried: the line stays when none of them can be written.
        """
        candidates = self.winners.best_first(ref)
        for k, candidate in enumerate(candidates):
            if previous_rank is not None and not _beats(candidate[0], previous_rank):
                if k == 0:
                    self.c["answers_older_than_manifest"] += 1
                return False
            if self._emit_one(ref, candidate):
                if k:
                    self.c["answers_fallback"] += 1  # written in place of newer answers that were invalid
                return True
        return False

    def _emit_one(self, ref: str, candidate: tuple) -> bool:
        _, (text, file, n) = candidate
        answer = _loads(text)
        try:
            # answer_entry and build_record_and_line, without the entry objects.
            prov, source_ref, names, boxes, width, height = _answer_parts(answer)
            dropped = ()
            if boxes:
                boxes, dropped = _screen_boxes(boxes, width, height)
            record, plain = assemble(source_ref, [(name, prov) for name in names],
                                     (boxes, prov) if boxes is not None else None, width, height)
            line = encode(record, plain)
        except (KeyError, TypeError, ValueError) as exc:
            self.reject("answers", getattr(exc, "code", INVALID_ANSWER), f"answer cannot become a manifest line: {exc}",
                        file=file, line_no=n, source_ref=ref, text=text)
            return False
        labels = fast_check(line, self.bucket)
        if labels is None:
            check = validate_record(record, self.bucket, len(line))
            if not check.ok:
                first = check.errors[0]
                self.reject("output", first.code, first.message, file=file, line_no=n, source_ref=ref,
                            text=text, issues=check.issues)
                return False
            labels = check.labels
        for box, code, reason in dropped:
            self.drop_box(code, reason, box, file=file, line_no=n, source_ref=ref)
        self.out.append(line)
        self._written(ref, labels)
        self.c["answers_applied"] += 1
        human = prov.human and (bool(names) or boxes is not None)  # ImageEntry.human
        self.c["answers_applied_human" if human else "answers_applied_auto"] += 1
        for field in ("confirmed", "rejected", "added", "adjusted"):
            for name in answer.get(field) or ():
                counts = self.labels.get(name)
                if counts is None:
                    counts = self.labels[name] = Counter()
                counts[field] += 1
        return True

    def emit_previous(self, ref: str | None, lines: list[tuple[str, re.Match | None]], answer_pending: bool) -> None:
        """One image's previous lines, each with its ``canonical_match`` (or None)."""
        if ref is not None and len(lines) == 1 and lines[0][1] is not None:
            # One line in our canonical form (the usual case): read only if it has to be.
            line, m = lines[0]
            record = None
            rank = _canonical_rank(m) if answer_pending else None
            if answer_pending and rank is None:
                record = json.loads(line)
                rank = _previous_rank(record)
        else:
            record, m, rank, line = None, None, None, None
            parsed = []
            for line, _ in lines:
                if len(line) > MAX_LINE_CHARS:
                    self.reject("previous", TERMINAL_LINE_TOO_LONG, f"line has {len(line)} characters (max {MAX_LINE_CHARS})",
                                source_ref=ref, text=line)
                    continue
                try:
                    parsed.append((line, json.loads(line)))
                except ValueError as exc:
                    self.reject("previous", ERROR_INVALID_JSON_LINE, f"not valid JSON: {exc}", text=line)
            if ref is None:
                for line, record in parsed:  # valid JSON but no usable source-ref
                    check = validate_record(record, self.bucket, len(line))
                    code, message = (check.errors[0].code, check.errors[0].message) if check.errors else (ERROR_MISSING_SOURCE_REF, "no source-ref")
                    self.reject("previous", code, message, text=line)
                return
            if not parsed:
                if answer_pending:
                    self._apply_answer(ref, replaces=False)
                return
            if len(parsed) > 1:
                parsed.sort(key=lambda item: _previous_rank(item[1]) + (item[0],), reverse=True)
                for line, _ in parsed[1:]:
                    self.reject("previous", TERMINAL_DUPLICATE_SOURCE_REF,
                                "image appears more than once in the previous manifest; kept the newest human-annotated line",
                                source_ref=ref, text=line)
            line, record = parsed[0]
            if answer_pending:
                rank = _previous_rank(record)
        if answer_pending and self._apply_answer(ref, replaces=True, previous_rank=rank):
            return
        self.c["previous_lines"] += 1
        if m is not None and (self.bucket is None or m[BUCKET_GROUP] == self.bucket):
            labels = match_labels(m)
            if labels is not None:
                self.out.append(line)
                self._written(ref, labels)
                self.c["previous_kept"] += 1
                return
        if record is None:
            record = json.loads(line)  # matched the canonical pattern: valid JSON
        check = validate_record(record, self.bucket, len(line))
        if check.ok:
            self.out.append(line)
            self._written(ref, check.labels)
            self.c["previous_kept"] += 1
            return
        canonical = _canonical(record)
        if canonical is not None:
            rebuilt, dropped = canonical
            again = validate_line(rebuilt, self.bucket)
            if again.ok:
                for box, code, reason in dropped:
                    self.drop_box(code, reason, box, file="previous manifest", line_no=None, source_ref=ref)
                self.out.append(rebuilt)
                self._written(ref, again.labels)
                self.c["previous_rewritten"] += 1
                return
        first = check.errors[0]
        self.reject("previous", first.code, first.message, source_ref=ref, text=line, issues=check.issues)

    def _apply_answer(self, ref: str, replaces: bool, previous_rank: tuple[bool, str] | None = None) -> bool:
        ok = self.emit_answer(ref, previous_rank)
        if ok:
            self.c["images_updated" if replaces else "images_added"] += 1
        return ok

    def _image(self, ref: str | None, lines: list[tuple[str, re.Match | None]]) -> None:
        """One image's previous lines (or one line without a source-ref), each with its match or None."""
        last = self.last
        if ref is not None and ref == last:
            # Same image again after an unreadable line split its group: already written once.
            for line, _ in lines:
                self.reject("previous", TERMINAL_DUPLICATE_SOURCE_REF,
                            "image appears more than once in the previous manifest; kept the first",
                            source_ref=ref, text=line)
            return
        pending = False
        if ref is not None:
            self.last = ref if ref > last else last
            new_refs, i = self.new_refs, self.next_new
            while i < len(new_refs) and new_refs[i] < ref:
                self._apply_answer(new_refs[i], replaces=False)
                i += 1
            pending = i < len(new_refs) and new_refs[i] == ref
            self.next_new = i + 1 if pending else i
        self.emit_previous(ref, lines, pending)

    def join(self, previous: Iterator[str]) -> None:
        """Write the previous lines (sorted by source-ref) and the winning answers in source-ref order.

        This is the merge's cost, so lines go in chunks. A run of lines in canonical form (see
        validation.canonical_match), in strictly increasing order and in the manifest's bucket (the
        usual case) is matched, checked, counted and written by C loops over the run (``_run``);
        Python only visits the answers and the lines that need more than that. Any other line goes
        image by image through ``_image`` (duplicates, foreign or invalid lines). The last image of a
        chunk waits for the next chunk, which may hold more lines of it.
        """
        self.new_refs = sorted(self.winners)
        self.next_new = 0
        self.last = ""
        self._prefix = f"s3://{self.bucket}/" if self.bucket is not None else ""
        source = iter(previous)
        lines: list[str] = []
        matches: list = []
        refs: list = []
        while True:
            chunk = list(itertools.islice(source, _CHUNK_LINES))
            if not chunk:
                break
            if max(map(len, chunk)) <= MAX_LINE_CHARS:
                chunk_matches = list(map(canonical_match, chunk))
            else:
                chunk_matches = [canonical_match(line) if len(line) <= MAX_LINE_CHARS else None for line in chunk]
            if None in chunk_matches:
                chunk_refs = [m[REF_GROUP] if m is not None else source_ref_of(line) for line, m in zip(chunk, chunk_matches)]
            else:
                chunk_refs = list(map(_ref_of_match, chunk_matches))
            lines += chunk
            matches += chunk_matches
            refs += chunk_refs
            # Everything before the last image's first line is complete.
            end = len(refs) - 1
            if refs[end] is not None:
                while end > 0 and refs[end - 1] == refs[end]:
                    end -= 1
            if end:
                self._complete(lines, matches, refs, end)
                del lines[:end], matches[:end], refs[:end]
        if lines:
            self._complete(lines, matches, refs, len(lines))
        for ref in self.new_refs[self.next_new:]:
            self._apply_answer(ref, replaces=False)
        self.flush()
        self._count_rows()

    def _complete(self, lines: list[str], matches: list, refs: list, end: int) -> None:
        """Handle lines[:end], whole images: runs of canonical lines together, any other line alone."""
        k = 0
        while k < end:
            try:
                j = matches.index(None, k, end)
            except ValueError:
                j = end
            if j < end and refs[j] is not None:
                while j > k and refs[j - 1] == refs[j]:
                    j -= 1  # that image continues with a line of another form: handle it whole below
            if j > k:
                self._run(lines, matches, refs, k, j)
            if j < end:
                k = self._group(lines, matches, refs, j, end)
            else:
                k = j
        if len(self.out) >= _FLUSH_LINES:
            self.flush()

    def _group(self, lines: list[str], matches: list, refs: list, k: int, end: int) -> int:
        """One image's lines from lines[k] (or that line alone if it has no source-ref); the index after them."""
        ref, j = refs[k], k + 1
        if ref is not None:
            while j < end and refs[j] == ref:
                j += 1
        self._image(ref, list(zip(lines[k:j], matches[k:j])))
        return j

    def _run(self, lines: list[str], matches: list, refs: list, k: int, end: int) -> None:
        """Canonical lines[k:end], whole images."""
        prefix = self._prefix
        verdicts = None
        # In strictly increasing order, with the first and last in the bucket, all of them are.
        if (refs[k] > self.last and refs[k].startswith(prefix) and refs[end - 1].startswith(prefix)
                and all(map(operator.lt, itertools.islice(refs, k, end - 1), itertools.islice(refs, k + 1, end)))):
            verdicts = self._verdicts(matches[k:end])
        if verdicts is None:
            while k < end:
                k = self._group(lines, matches, refs, k, end)
            return
        class_rows, box_labels = verdicts
        new_refs, n, out = self.new_refs, len(self.new_refs), self.out
        start, kept = k, end - k
        i = self.next_new
        while i < n and new_refs[i] <= refs[end - 1]:
            at = bisect.bisect_left(refs, new_refs[i], k, end)
            out += itertools.islice(lines, k, at)
            if at < end and refs[at] == new_refs[i]:
                # An answer for this image: it was counted as kept above; _image decides.
                m = matches[at]
                labels = box_labels.pop(m, None)
                if labels is None:
                    class_rows[_CLASS_ROW(m)] -= 1
                else:
                    self._count_labels(labels, -1)
                kept -= 1
                self._image(refs[at], [(lines[at], m)])
                k = at + 1
            else:
                self._apply_answer(new_refs[i], replaces=False)  # a new image
                self.next_new = i + 1
                k = at
            i = self.next_new
        out += itertools.islice(lines, k, end)
        self.lines_written += kept
        self.c["previous_lines"] += kept
        self.c["previous_kept"] += kept
        if self.unlabelled:
            self.unlabelled.difference_update(itertools.islice(refs, start, end))
        if self.unresolved:
            self.unresolved.difference_update(itertools.islice(refs, start, end))
        self.last = refs[end - 1]

    def _verdicts(self, part: list):
        """Check canonical matches together and count their labels as kept; None if any is not valid.

        Lines without boxes and with at most two labels (most lines) are counted by their label
        groups in ``self.class_rows`` (a C loop; the labels of the rows are added up at the end),
        lines with up to three boxes are checked by ``boxes_labels``, the rest one by one.
        Returns the counter of rows and the labels of the other lines (by match).
        """
        heads = list(map(_HEAD, part))
        simple = list(map(operator.eq, heads, itertools.repeat(_NO_HEAD)))
        rows = list(map(_CLASS_ROW, itertools.compress(part, simple)))
        unseen = set(rows).difference(self.seen_rows)
        if unseen:
            self.seen_rows |= unseen
            self.bad_rows.update(row for row in unseen if simple_labels(*row) is None)
        if self.bad_rows and not self.bad_rows.isdisjoint(rows):
            return None
        box_labels = {}
        if len(rows) < len(part):
            few = list(map(operator.eq, map(_MORE, heads), itertools.repeat(_NO_MORE)))
            with_boxes = list(itertools.compress(part, map(operator.gt, few, simple)))  # few and not simple
            if with_boxes:
                labels = boxes_labels(with_boxes)
                if labels is None:
                    return None
                box_labels = dict(zip(with_boxes, labels))
            for m in itertools.compress(part, map(operator.not_, few)):
                labels = match_labels(m)
                if labels is None:
                    return None
                box_labels[m] = frozenset(labels)
            # All valid: count them.
            for labels, count in Counter(box_labels.values()).items():
                self._count_labels(labels, count)
        self.class_rows.update(rows)
        return self.class_rows, box_labels

_CREATION_DATE = re.compile(r'"creation-date":"([^"]*)"')
_CLASS_NAME = re.compile(r'"class-name":"([^"]*)"')


def _date_or_empty(value: str) -> str:
    try:
        return manifest_date(value)
    except (TypeError, ValueError):
        return ""


def _canonical_rank(m: re.Match) -> tuple[bool, str] | None:
    """``_previous_rank`` of a line in canonical form, read from its text; None when only parsing tells.

    The same as parse_record's for a valid line whose labels do not repeat across attributes
    (parse_record keeps the first, JSON the last of a repeated key); the others go the long way.
    """
    if match_labels(m) is None:
        return None
    classes = m["classes"]
    if classes.count('"class-name":"') > 1:
        names = _CLASS_NAME.findall(classes)
        if len(set(names)) != len(names):
            return None
    line = m.string  # key and values hold no quote: these strings only occur as keys and values
    dates = _CREATION_DATE.findall(line)
    return ('"human-annotated":"yes"' in line, max(map(_date_or_empty, dates), default=""))


def _beats(answer_rank: tuple, previous_rank: tuple[bool, str]) -> bool:
    """Whether an answer replaces the previous line: a human answer beats an auto-accepted line, and
    among equals the answer at least as new as the line does (an auto answer never beats a human line)."""
    human, date = previous_rank
    new_human, new_date = answer_rank[:2]
    return new_human if human != new_human else new_date >= date


class _NoValidBox(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _screen_boxes(boxes: tuple, width: int, height: int) -> tuple[tuple, list]:
    """(the valid boxes, [(box, code, reason)] of the others): one stray box never costs the whole answer.

    Raises ValueError when no box is valid: an answer whose every box is bad says nothing usable,
    and writing it as "no object here" would turn a worker's slip into a verified empty image.
    """
    good, dropped = [], []
    for box in boxes:
        problem = box_problem(box["left"], box["top"], box["width"], box["height"], width, height)
        if problem is None:
            good.append(box)
        else:
            dropped.append((box, *problem))
    if dropped and not good:
        raise _NoValidBox(dropped[0][1], f"none of the {len(boxes)} boxes is valid: the first {dropped[0][2]}")
    return (tuple(good), dropped) if dropped else (boxes, dropped)


def _previous_rank(record) -> tuple[bool, str]:
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
            boxes, dropped = _screen_boxes(entry.detection.boxes, entry.width, entry.height)
            if dropped:
                entry.detection = Detection(boxes, entry.detection.provenance)
        return dumps(build_record(entry)), dropped
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def answer_entry(answer: dict) -> ImageEntry:
    """A normalized answer line as a manifest entry, with the answer's own date and job name."""
    prov, source_ref, names, boxes, width, height = _answer_parts(answer)
    return ImageEntry(source_ref=source_ref, width=width, height=height,
                      labels=[ImageLabel(name, prov) for name in names],
                      detection=Detection(boxes, prov) if boxes is not None else None)


def _answer_parts(answer: dict):
    """answer_entry's parts: (provenance, source-ref, sorted label names, boxes or None, width, height)."""
    agreement = answer.get("agreement")
    if not isinstance(agreement, (int, float)) or isinstance(agreement, bool) or not 0 <= agreement <= 1:
        agreement = 0.0  # Ground Truth's own value when it has no agreement figure
    prov = Provenance(
        human=answer.get("human") is True,
        job_name=str(answer.get("source") or answer.get("backend") or ""),
        creation_date=manifest_date(answer["answered_at"]),
        confidence=float(agreement),
    )
    source_ref = answer["source-ref"]
    names, boxes, width, height = [], None, None, None
    kind = answer.get("kind")
    if kind == "boxes":
        width, height = answer.get("width"), answer.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            raise ValueError("a boxes answer needs integer width and height")
        boxes = []
        for box in answer.get("boxes") or ():
            if not isinstance(box.get("label"), str):
                raise ValueError(f"box without a label: {box!r}")
            boxes.append({"label": box["label"], "left": int(round(box["left"])), "top": int(round(box["top"])),
                          "width": int(round(box["width"])), "height": int(round(box["height"]))})
        boxes = tuple(boxes)
    elif kind == "classification":
        labels = answer.get("labels") or []
        if not all(isinstance(name, str) for name in labels):
            raise ValueError(f"labels must be strings: {labels!r}")
        names = sorted(set(labels))
        if isinstance(answer.get("width"), int) and isinstance(answer.get("height"), int):
            width, height = answer["width"], answer["height"]
    else:
        raise ValueError(f"kind must be 'classification' or 'boxes', got {kind!r}")
    if not names and boxes is None and width is not None:
        # "No label applies" is a verified answer. An empty box attribute keeps who said so and when
        # (Rekognition keeps such a line with WARNING_NO_ATTRIBUTE_ANNOTATIONS and trains on nothing
        # from it); a bare source-ref line could not tell a later merge that a human verified it.
        boxes = ()
    return prov, source_ref, names, boxes, width, height


def _scan_sorted(lines: Iterable[str], buckets: Counter) -> bool:
    """Whether the lines are sorted by source-ref; counts images per bucket on the way.

    Sorted lines keep each bucket's images together, so a bucket is looked up once per run of
    lines that share its prefix rather than once per line.
    """
    last = ""
    in_order = True
    run_prefix, run_bucket, run_count = None, None, 0
    for raw in lines:
        if run_prefix is not None and raw.startswith(run_prefix):
            end = raw.find('"', 15)
            ref = raw[15:end] if end > 15 and raw.find("\\", 15, end) < 0 else source_ref_of(raw.rstrip("\r\n"))
        else:
            ref = source_ref_of(raw.rstrip("\r\n"))
            if ref is None:
                continue
            if run_bucket is not None:
                buckets[run_bucket] += run_count
            run_bucket = ref[5:ref.find("/", 5)]
            run_prefix, run_count = f'{_FAST_PREFIX}s3://{run_bucket}/', 0
        if ref is None:
            continue
        if ref < last:
            in_order = False
        last = ref
        run_count += 1
    if run_bucket is not None:
        buckets[run_bucket] += run_count
    return in_order


_strip_newline = operator.methodcaller("rstrip", "\r\n")


def _clean(lines: Iterable[str]) -> Iterator[str]:
    """Lines without their newline; empty lines dropped (they hold no data). C-level: no per-line Python."""
    return filter(None, map(_strip_newline, lines))


def _external_sort(lines: Iterable[str], buckets: Counter, tmpdir: str, chunk_lines: int) -> Iterator[str]:
    runs: list[str] = []
    chunk: list[str] = []

    def spill():
        chunk.sort(key=_sort_key)
        path = os.path.join(tmpdir, f"run-{len(runs):05d}.jsonl")
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in chunk)
        runs.append(path)
        chunk.clear()

    for line in lines:
        ref = source_ref_of(line)
        if ref is not None:
            buckets[ref[5:ref.find("/", 5)]] += 1
        chunk.append(line)
        if len(chunk) >= chunk_lines:
            spill()
    if not runs:
        chunk.sort(key=_sort_key)
        return iter(chunk)
    if chunk:
        spill()
    files = [open(path, encoding="utf-8") for path in runs]
    streams = [(line.rstrip("\n") for line in f) for f in files]

    def merged():
        try:
            yield from heapq.merge(*streams, key=_sort_key)
        finally:
            for f in files:
                f.close()

    return merged()


@contextlib.contextmanager
def _fewer_gc_passes(gen0: int = 50_000):
    """The merge allocates millions of short-lived, acyclic objects; at the default threshold (700)
    the cyclic collector runs every few lines and finds nothing (about 15% of the merge's time).
    Collection stays on, just rarer, and the process's setting is restored afterwards."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], gen0), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def merge_manifest(
    *,
    answers: Iterable[LineSource],
    write_manifest: Writer,
    write_reject: Writer,
    unlabelled: Iterable[LineSource] = (),
    unresolved: Iterable[LineSource] = (),
    previous: Callable[[], Iterable[str]] | Iterable[str] | None = None,
    images_bucket: str | None = None,
    max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO,
    spill_dir: str | None = None,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> dict:
    """Merge and write; return the summary (see ``summarize``).

    ``unlabelled`` and ``unresolved`` list items (one ``source-ref`` a line) that got no answer: the
    review's unlabelled items, and the objects a backend left unresolved (e.g. no consensus); both
    are counted in the summary's ``images``, never written.

    ``previous`` may be a zero-argument callable that re-opens the previous manifest: then a sorted
    previous manifest is read twice (a cheap scan, then the merge) instead of being sorted on disk.
    ``images_bucket`` is the one bucket every image must be in; by default the previous manifest's
    (else the answers'). Images of another bucket raise ``ImagesBucketChanged`` before anything is written.
    Does not raise on too many rejects: call ``check_reject_threshold`` after storing the rejects.
    """
    if not 0 <= max_reject_ratio <= 1:
        raise ValueError(f"max_reject_ratio must be between 0 and 1, got {max_reject_ratio!r}")
    with _fewer_gc_passes():
        return _merge(answers, write_manifest, write_reject, unlabelled, unresolved, previous, images_bucket,
                      max_reject_ratio, spill_dir, chunk_lines)


def _merge(answers, write_manifest, write_reject, unlabelled, unresolved, previous, images_bucket, max_reject_ratio,
           spill_dir, chunk_lines) -> dict:
    state = _Merge(write_manifest, write_reject, images_bucket)
    state.read_answers(answers)
    state.read_unlabelled(unlabelled)
    state.read_unlabelled(unresolved, into=state.unresolved, stage="unresolved")
    buckets: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="rekfeedback-merge-", dir=spill_dir) as tmpdir:
        if previous is None:
            stream: Iterator[str] = iter(())
        elif callable(previous) and _scan_sorted(previous(), buckets):
            stream = _clean(previous())
        else:
            buckets.clear()
            source = previous() if callable(previous) else previous
            stream = _external_sort(_clean(source), buckets, tmpdir, chunk_lines)
        state.bucket = _one_bucket(state.bucket, buckets, state.winners)
        state.join(stream)
    return summarize(state, max_reject_ratio)


def _one_bucket(given: str | None, previous: Counter, refs: Iterable[str]) -> str | None:
    """The manifest's one images bucket; raises ImagesBucketChanged rather than drop a line for its bucket.

    Rekognition trains a manifest from one bucket only. Rejecting the lines of the other bucket
    would lose verified answers without failing (they are few next to a large turn, under the
    reject threshold): the merge refuses instead, before writing anything.
    """
    answers = Counter(ref[5:ref.find("/", 5)] for ref in refs)
    bucket = given or (_most_common(previous) if previous else _most_common(answers) if answers else None)
    foreign_previous = {b: n for b, n in previous.items() if b != bucket}
    foreign_answers = {b: n for b, n in answers.items() if b != bucket}
    if foreign_previous or foreign_answers:
        raise ImagesBucketChanged(bucket, dict(previous), dict(answers))
    return bucket


def _most_common(counts: Counter) -> str:
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


class ImagesBucketChanged(ValueError):
    """Images from more than one bucket: nothing was written, nothing verified was dropped."""

    def __init__(self, bucket: str | None, previous: dict[str, int], answers: dict[str, int]):
        self.bucket, self.previous, self.answers = bucket, previous, answers
        where = "the previous manifest" if previous else "the answers"
        super().__init__(
            f"the manifest's images must all be in one S3 bucket ({bucket!r}, from {where}), but the previous "
            f"manifest has images per bucket {previous or {}} and this turn's answers {answers}. Nothing was "
            "written and no verified line was dropped. Copy the new images into the dataset's bucket and review "
            "them from there, or start a new cumulative dataset (setting `dataset_name`)."
        )


def summarize(state: _Merge, max_reject_ratio: float) -> dict:
    c = state.c
    fields = ("confirmed", "rejected", "added", "adjusted")
    names = sorted(set(state.labels) | set(state.label_images))
    labels = {name: {**{f: state.labels.get(name, {}).get(f, 0) for f in fields}, "images": state.label_images.get(name, 0)}
              for name in names}
    totals = {f: sum(v[f] for v in labels.values()) for f in fields}
    lines = state.lines_written
    ratio = c["rejects"] / (lines + c["rejects"]) if lines + c["rejects"] else 0.0
    warnings = []
    if lines > MAX_MANIFEST_LINES:
        warnings.append(f"{lines} lines: over the {MAX_MANIFEST_LINES} lines Rekognition accepts in a manifest file "
                        "(ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM); add them to a dataset with UpdateDatasetEntries instead")
    if len(labels) > MAX_LABELS:
        warnings.append(f"{len(labels)} labels: over Rekognition's {MAX_LABELS} (ERROR_MANIFEST_TOO_MANY_LABELS)")
    return {
        "manifest_lines": lines,
        "images_bucket": state.bucket,
        "images": {
            "added": c["images_added"],
            "updated": c["images_updated"],
            "kept_from_previous": c["previous_kept"] + c["previous_rewritten"],
            "rewritten_from_previous": c["previous_rewritten"],
            "verified_empty": c["verified_empty"],
            "unlabelled": len(state.unlabelled),
            "unresolved": len(state.unresolved),
        },
        "answers": {
            "read": c["answers_read"],
            "distinct_images": len(state.winners),
            "repeated": c["answers_repeated"],
            "superseded": c["answers_superseded"],
            "older_than_manifest": c["answers_older_than_manifest"],
            "applied": c["answers_applied"],
            "applied_human": c["answers_applied_human"],
            "applied_auto_accepted": c["answers_applied_auto"],
            "pending_agreement": c["answers_pending"],
            "fallback": c["answers_fallback"],
        },
        "previous": {"lines": c["previous_lines"]},
        "rejects": c["rejects"],
        "boxes_dropped": c["boxes_dropped"],
        "rejects_by_code": dict(sorted(state.reject_codes.items())),
        "reject_ratio": round(ratio, 6),
        "max_reject_ratio": max_reject_ratio,
        "threshold_exceeded": ratio > max_reject_ratio,
        "labels": labels,
        "totals": totals,
        "warnings": warnings,
    }


def check_reject_threshold(summary: dict) -> None:
    if summary["threshold_exceeded"]:
        raise RejectThresholdExceeded(
            f"{summary['rejects']} rejected lines ({summary['reject_ratio']:.1%}) exceed max_reject_ratio "
            f"{summary['max_reject_ratio']:.0%} (Rekognition refuses a manifest with more than 20% invalid lines); "
            f"by code: {summary['rejects_by_code']}. Read the rejects file, fix the answers or the previous "
            "manifest, then clear the task."
        )
