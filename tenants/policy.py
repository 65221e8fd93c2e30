"""The published privacy policy, parsed from its text into headed sections for our page."""

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings

POLICY_FILE = Path(settings.BASE_DIR) / "privacy" / "content" / "privacy-policy-2026-05-14.txt"
HEADING = re.compile(r"^(\d+)\.\s+(.+)$")


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


@dataclass
class Policy:
    title: str
    updated: str
    intro: list[str]
    sections: list[Section]


def parse_policy(text: str) -> Policy:
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip()]
    updated = next((line for line in lines if line.startswith("Last updated")), "")
    title = next((line for line in lines if line.strip() == "Privacy Policy"), "Privacy Policy")
    intro: list[str] = []
    sections: list[Section] = []
    for line in lines:
        if line in (updated, title) or line.strip() == "AI TokenScope":
            continue
        match = HEADING.match(line.strip())
        if match:
            sections.append(Section(title=f"{match.group(1)}. {match.group(2)}"))
        elif line.strip().startswith("•"):
            sections[-1].bullets.append(line.strip().lstrip("•").strip())
        elif sections:
            sections[-1].paragraphs.append(line.strip())
        else:
            intro.append(line.strip())
    return Policy(title=title, updated=updated, intro=intro, sections=sections)


@cache
def current_policy() -> Policy:
    """The policy in force, from the text we publish."""
    return parse_policy(POLICY_FILE.read_text(encoding="utf-8"))
