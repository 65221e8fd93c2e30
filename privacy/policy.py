"""The privacy policy's text, parsed into headed sections for our page."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

CONTENT_DIR = Path(settings.BASE_DIR) / "privacy" / "content"
SEED_VERSION = "2026-05-14"
SEED_FILE = CONTENT_DIR / f"privacy-policy-{SEED_VERSION}.txt"
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
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    updated = next((line for line in lines if line.startswith("Last updated")), "")
    title = next((line for line in lines if line == "Privacy Policy"), "Privacy Policy")
    intro: list[str] = []
    sections: list[Section] = []
    for line in lines:
        if line in (updated, title) or line == "AI TokenScope":
            continue
        match = HEADING.match(line)
        if match:
            sections.append(Section(title=f"{match.group(1)}. {match.group(2)}"))
        elif line.startswith("•") and sections:
            sections[-1].bullets.append(line.lstrip("•").strip())
        elif sections:
            sections[-1].paragraphs.append(line)
        else:
            intro.append(line)
    return Policy(title=title, updated=updated, intro=intro, sections=sections)


def seed_text() -> str:
    return SEED_FILE.read_text(encoding="utf-8")
