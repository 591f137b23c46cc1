"""Text for a terminal: names that come from the files (anyone who can write the ssl dir chooses them)
must not be able to move the cursor, erase a line or start a new one on root's screen; and the words every
text report shares (a sentence's end, a plural, a finding's line). Imports nothing: ``status`` stays light."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every control or otherwise unprintable character shown as an escape (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def sentence(text: str) -> str:
    """``text`` ending in a sentence: a full stop added unless it ends in one (or ``?``, ``!``) already.
    Reasons are written as clauses so that they can be embedded ("x is missing; y ..."); readers get
    whole sentences."""
    text = text.rstrip().rstrip(";:,").rstrip()
    return text if not text or text.endswith((".", "?", "!")) else text + "."


def plural(count: int, noun: str) -> str:
    """``1 error``, ``2 errors``, ``0 failed hooks``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def finding_line(level: str, code: str, pending: bool, message: str) -> str:
    """One finding in a text report (``reconcile``, ``check``, ``status``): its level, its code (the key of
    docs/operations.md's troubleshooting table) and ``file: reason.``."""
    return f"  {level} [{code}]{' (pending)' if pending else ''}: {message}"
