"""Text for a terminal: names that come from the files (anyone who can write the ssl dir chooses them)
must not be able to move the cursor, erase a line or start a new one on root's screen."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every control or otherwise unprintable character shown as an escape (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)
