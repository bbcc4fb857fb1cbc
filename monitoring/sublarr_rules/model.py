"""Rules as data: a recording rule, an alert, a group, and their Prometheus form."""
from __future__ import annotations

from dataclasses import dataclass

RUNBOOK = "monitoring/runbook.md"
"""Where each alert's runbook section lives (anchor: the alert's name in lower case)."""


@dataclass(frozen=True)
class Record:
    record: str
    expr: str
    comment: str = ""
    """Written above the rule in the YAML."""

    def to_dict(self) -> dict:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    comment: str = ""

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK}#{self.name.lower()}"

    def to_dict(self) -> dict:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description,
                            "runbook_url": self.runbook_url},
        }


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Record | Alert, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "rules": [rule.to_dict() for rule in self.rules]}
