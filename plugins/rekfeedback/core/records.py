"""What every stage's typed record shares: a pydantic base, the one reader and the one writer.

The records themselves live with their stage: `core.predictions.PredictionLine`,
`core.review.ReviewItem`, `core.answers.Answer` (the manifest line is `core.manifest`'s).
docs/data-formats.md points at them. Pydantic is the one Airflow ships; the Lambdas never
import a record (their core is `core.verification_task`), so their bundle needs no pydantic.

Records keep keys they do not declare (`extra="allow"`): a field a later stage adds (a
selection's reason, a review round's `status`) passes through an earlier reader untouched.
Readers hand the stages plain dicts, exactly the validated line, because the stages' logic
works on dicts and must see what was written, not a re-serialisation of it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Callable, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# An image's S3 URI: the join key of every stage.
SourceRef = Annotated[str, Field(pattern=r"^s3://")]
# A label name: never empty.
LabelName = Annotated[str, Field(min_length=1)]


class Record(BaseModel):
    """Strict (no "640" for 640, no true for 1), keeps unknown keys, `source-ref` by its JSON name."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


def _problem(error: ValidationError) -> str:
    """The first problem of a validation error, naming the field as the line spells it."""
    first = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"'{field}': {message}" if field else message


def check(model: type[Record], obj: Any, where: str) -> dict:
    """`obj` validated as `model`; ValueError naming `where` and the field when it is not one."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    try:
        model.model_validate(obj)
    except ValidationError as err:
        raise ValueError(f"{where}: {_problem(err)}") from None
    return obj


def read(model: type[Record], text: str | bytes | Iterable[str], where: str) -> Iterator[dict]:
    """The one reader of a stage's JSON Lines file: each line checked as `model`, named by line number."""
    return iter_jsonl(text, where, validate=lambda obj, at: check(model, obj, at))


def dumps(model: type[Record], rows: Iterable[dict], where: str = "record") -> str:
    """The one writer: every row checked as `model`, sorted by source-ref (then answer id), keys sorted,
    compact, so a rerun writes the same bytes whatever order the rows came in."""
    rows = [check(model, row, f"{where} {n}") for n, row in enumerate(rows, start=1)]
    rows.sort(key=lambda r: (r["source-ref"], r.get("answer_id") or ""))
    return "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows)


def iter_jsonl(text: str | bytes | Iterable[str], what: str = "JSON Lines file",
               validate: Callable[[Any, str], dict] | None = None) -> Iterator[dict]:
    """The one JSON Lines reader: a whole text, or its lines streamed; blank lines are skipped; a bad
    line raises ValueError naming `what` and the line. `validate(obj, "<what> line <n>")` checks each
    record of a stage (prediction line, answer...) and returns it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    lines = text.splitlines() if isinstance(text, str) else text
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{what} line {number}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg}); fix or remove the line") from None
        if validate is not None:
            yield validate(obj, where)
        elif not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        else:
            yield obj
