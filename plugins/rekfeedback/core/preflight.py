"""Preflight findings and their report: what is wrong with which resource, and what to do about it.

Pure: the checks (`rekfeedback.preflight`) call AWS and Label Studio and produce `Finding`s;
this module only records and formats them, so the operator's log, its failure message and the
`rekfeedback preflight` command print the same list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

ERROR = "error"
WARNING = "warning"
SEVERITIES = (ERROR, WARNING)


@dataclass(frozen=True)
class Finding:
    """One problem with one resource.

    check: which check found it ("model", "input", "output", "cors", "workteam", "role", "lambda",
        "labelstudio", "template", "labels", "config").
    resource: the ARN, S3 URI, URL or setting name the problem is about.
    problem: what is wrong, in one sentence.
    advice: what to do about it, in one sentence.
    """

    check: str
    resource: str
    problem: str
    advice: str
    severity: str = ERROR

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        for name in ("check", "resource", "problem", "advice"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"a preflight finding needs a non-empty {name}")

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def line(self) -> str:
        return f"[{self.check}] {self.resource}: {self.problem} -> {self.advice}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(**{k: data[k] for k in ("check", "resource", "problem", "advice", "severity") if k in data})


Problem = Finding  # the issue calls them problems; one record serves both names


@dataclass
class Report:
    """Everything one preflight found: findings, the checks that ran, and facts worth logging.

    `passed` lists "<check> <resource>" for each resource checked without an error, so the log shows
    what was looked at, not only what failed. `facts` holds counts and states (candidates, new images,
    model status, Label Studio version...).
    """

    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, check: str, resource: str, problem: str, advice: str, severity: str = ERROR) -> Finding:
        finding = Finding(check, resource, problem, advice, severity)
        self.findings.append(finding)
        return finding

    def error(self, check: str, resource: str, problem: str, advice: str) -> Finding:
        return self.add(check, resource, problem, advice, ERROR)

    def warning(self, check: str, resource: str, problem: str, advice: str) -> Finding:
        return self.add(check, resource, problem, advice, WARNING)

    def ok(self, check: str, resource: str) -> None:
        self.passed.append(f"{check} {resource}")

    def extend(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_error]

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def has(self, check: str, resource: str | None = None, severity: str | None = None) -> bool:
        return any(f.check == check and (resource is None or f.resource == resource)
                   and (severity is None or f.severity == severity) for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"findings": [f.as_dict() for f in self.findings], "passed": list(self.passed),
                "facts": dict(self.facts)}

    def format(self, title: str = "Preflight") -> str:
        return format_report(self.findings, self.facts, self.passed, title)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(findings: Iterable[Finding], title: str = "Preflight") -> str:
    findings = list(findings)
    errors = sum(f.is_error for f in findings)
    warnings = len(findings) - errors
    verdict = "FAILED" if errors else "passed"
    return f"{title} {verdict}: {_count(errors, 'problem')}, {_count(warnings, 'warning')}"


def format_findings(findings: Iterable[Finding]) -> str:
    """Errors first, then warnings, numbered, each with its advice on its own line."""
    ordered = sorted(findings, key=lambda f: (not f.is_error,))  # stable: checks keep their order
    lines = []
    for i, f in enumerate(ordered, 1):
        lines.append(f"{i:>2}. {f.severity.upper():<7} [{f.check}] {f.resource}")
        lines.append(f"      problem: {f.problem}")
        lines.append(f"      do:      {f.advice}")
    return "\n".join(lines)


def format_report(findings: Iterable[Finding], facts: dict[str, Any] | None = None,
                  passed: Iterable[str] = (), title: str = "Preflight") -> str:
    findings = list(findings)
    parts = [summary_line(findings, title)]
    if findings:
        parts.append(format_findings(findings))
    if facts:
        parts.append("facts:\n" + "\n".join(f"  {k}: {v}" for k, v in facts.items()))
    passed = list(passed)
    if passed:
        parts.append("checked without problems:\n" + "\n".join(f"  - {p}" for p in passed))
    return "\n".join(parts)
