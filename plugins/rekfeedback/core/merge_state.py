"""The merge's state: this turn's answers ranked per image, the lines written, counts and rejects.

``core.merge`` runs a merge; ``core.merge_previous`` walks the previous manifest and calls
``apply_answer`` / ``keep`` here in source-ref order. Answers are read with orjson.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Callable, Iterable

import orjson

from rekfeedback.core.consensus import is_pending
from rekfeedback.core.manifest import Provenance, assemble, encode, manifest_date
from rekfeedback.core.merge_record import Digest
from rekfeedback.core.ranking import Ranking, answer_rank
from rekfeedback.core.validation import (
    ERROR_INVALID_JSON_LINE,
    ERROR_INVALID_SOURCE_REF_FORMAT,
    ERROR_MISSING_SOURCE_REF,
    box_problem,
    bucket_of,
    validate_record,
)

INVALID_ANSWER = "INVALID_ANSWER"
LineSource = tuple[str, Iterable[str]]  # (name used in messages, e.g. the S3 URI; its lines)
Writer = Callable[[str], object]
_FLUSH_LINES = 4096  # output lines joined into one write
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


class MergeState:
    """One merge's answers, counts and output; the previous manifest's walk drives the writing."""
    def __init__(self, write_manifest: Writer, write_reject: Writer, images_bucket: str | None):
        self.write_manifest = write_manifest
        self.write_reject = write_reject
        self.bucket = images_bucket
        # ref -> the image's answers as (file, line no) by rank. The answer itself is kept once, as the
        # canonical text the rank ends with, not parsed (a dict per image costs three times the memory);
        # the answers that are written are parsed again.
        self.winners: Ranking[tuple[str, int]] = Ranking()
        self.unlabelled: set[str] = set()
        self.unresolved: set[str] = set()  # objects a review backend left without an answer (Ground Truth: no consensus)
        self.c: Counter = Counter()
        self.reject_codes: Counter = Counter()
        self.labels: dict[str, Counter] = {}
        self.label_images: Counter = Counter()  # images per label in the written manifest
        self.lines_written = 0
        self.out: list[str] = []  # manifest lines not yet written, without their newline
        self.digest = Digest()  # of the bytes written: the next merge trusts them if they are unchanged

    def flush(self, at_least: int = 0) -> None:
        """Write the pending lines (when there are more than ``at_least``)."""
        if len(self.out) > at_least:
            text = "\n".join(self.out) + "\n"
            self.write_manifest(text)
            self.digest.add(text)
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
        outcome = self.winners.offer(ref, rank, (name, n))
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
    def count_labels(self, labels, sign: int) -> None:
        """Count (sign 1) or uncount (sign -1) a written line's labels."""
        label_images = self.label_images
        for name in labels:
            count = label_images[name] + sign
            if count:
                label_images[name] = count
            else:
                del label_images[name]
        if not labels:
            self.c["verified_empty"] += sign

    def keep(self, ref: str, line: str, labels) -> None:
        """Write a line of the previous manifest (validated, or carried forward: then ``labels`` is None,
        its labels being in the previous merge's record already)."""
        self.out.append(line)
        if labels is None:
            self.lines_written += 1
            self.discard_waiting((ref,))
        else:
            self._written(ref, labels)

    def discard_waiting(self, refs) -> None:
        """These images have a line: no longer counted as unlabelled or unresolved."""
        if self.unlabelled:
            self.unlabelled.difference_update(refs)
        if self.unresolved:
            self.unresolved.difference_update(refs)

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
            if previous_rank is not None and not beats(candidate[0], previous_rank):
                if k == 0:
                    self.c["answers_older_than_manifest"] += 1
                return False
            if self._emit_one(ref, candidate):
                if k:
                    self.c["answers_fallback"] += 1  # written in place of newer answers that were invalid
                return True
        return False

    def _emit_one(self, ref: str, candidate: tuple) -> bool:
        rank, (file, n) = candidate
        text = rank[-1]  # the answer's canonical text (core.ranking)
        answer = _loads(text)
        try:
            # build_record_and_line of the answer's entry, without the entry objects.
            prov, source_ref, names, boxes, width, height = _answer_parts(answer)
            dropped = ()
            if boxes:
                boxes, dropped = screen_boxes(boxes, width, height)
            record, plain = assemble(source_ref, [(name, prov) for name in names],
                                     (boxes, prov) if boxes is not None else None, width, height)
            line = encode(record, plain)
        except (KeyError, TypeError, ValueError) as exc:
            self.reject("answers", getattr(exc, "code", INVALID_ANSWER), f"answer cannot become a manifest line: {exc}",
                        file=file, line_no=n, source_ref=ref, text=text)
            return False
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

    def apply_answer(self, ref: str, replaces: bool, previous_rank: tuple[bool, str] | None = None) -> bool:
        """Write the image's answer (an added image, or one replacing its previous line); False if it is not written."""
        ok = self.emit_answer(ref, previous_rank)
        if ok:
            self.c["images_updated" if replaces else "images_added"] += 1
        return ok


def beats(answer_rank: tuple, previous_rank: tuple[bool, str]) -> bool:
    """Whether an answer replaces the previous line: a human answer beats an auto-accepted line, and
    among equals the answer at least as new as the line does (an auto answer never beats a human line)."""
    human, date = previous_rank
    new_human, new_date = answer_rank[:2]
    return new_human if human != new_human else new_date >= date


class _NoValidBox(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def screen_boxes(boxes: tuple, width: int, height: int) -> tuple[tuple, list]:
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

