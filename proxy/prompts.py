"""The prompt of a Messages request: its text for storage and its canonical SHA-256.

Canonical form (documented in docs/privacy-mode.md so customers can recompute a hash): the JSON
object {"messages": <messages>, "system": <system or null>} serialised with sorted keys, no
insignificant whitespace (separators "," and ":"), non-ASCII characters kept as UTF-8
(ensure_ascii off), then encoded as UTF-8 and hashed with SHA-256, written as lowercase hex.
"""

import hashlib
import json
from typing import Any


def canonical_prompt(body: dict[str, Any]) -> bytes:
    payload = {"messages": body.get("messages"), "system": body.get("system")}
    # surrogatepass: a lone surrogate (valid JSON escape, not valid UTF-8) must not crash.
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def prompt_sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_prompt(body)).hexdigest()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    parts.append(block["text"])
                elif block.get("type") == "tool_result":
                    parts.append(_text_of(block.get("content")))
                elif block.get("type") == "tool_use":
                    parts.append(json.dumps(block.get("input"), ensure_ascii=False))
        return "\n".join(part for part in parts if part)
    return ""


def storable_text(text: str) -> str:
    """Text PostgreSQL can store: NUL and lone surrogates (both valid in JSON) become U+FFFD."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def prompt_text(body: dict[str, Any]) -> str:
    """System prompt and messages as readable text (images and documents are left out)."""
    sections = []
    system = _text_of(body.get("system"))
    if system:
        sections.append(f"[system]\n{system}")
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            text = _text_of(message.get("content"))
            if text:
                sections.append(f"[{message.get('role', 'user')}]\n{text}")
    return storable_text("\n\n".join(sections))
