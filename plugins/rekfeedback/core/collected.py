"""What a collect step writes, the same for both backends: answers, pending answers, unresolved images.

The Ground Truth sensor and the Label Studio sensor each turn their backend's output into normalized
answers (joined to review/items.jsonl) and unresolved images; from there on this decides the files,
their bytes and the counts, so the two write the same fields the same way.
"""

from __future__ import annotations

from rekfeedback.core import answers as ans
from rekfeedback.core import consensus
from rekfeedback.core import review_round


def collected(answers_uri: str, answers: list[dict], unresolved: list[dict], *,
              reviewed: bool = False) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
    """(S3 URI -> text to write, the step's XCom URIs, its counts) for one collect step.

    Answers below their agreement threshold go to `*.pending.jsonl` (the review round's input), never
    to the answers the merge reads; with `reviewed` (the review round's own wait) every answer is final.
    Same answers in any order -> same bytes, so a retried step rewrites the same files.
    """
    verified, pending = consensus.split(review_round.mark_reviewed(answers) if reviewed else answers)
    uris = {"answers_uri": answers_uri, "pending_uri": consensus.pending_uri(answers_uri),
            "unresolved_uri": ans.unresolved_uri(answers_uri)}
    files = {uris["answers_uri"]: ans.dumps_jsonl(verified), uris["pending_uri"]: ans.dumps_jsonl(pending),
             uris["unresolved_uri"]: ans.dumps_unresolved(unresolved)}
    return files, uris, {"answers": len(verified), "unresolved": len(unresolved), "pending": len(pending)}
