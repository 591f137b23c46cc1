"""JSON from files another user may have written (an ACME record, a bundle manifest, a bundle record):
parsed only within bounds, so that nothing in it can crash or stall the reader.

Nesting is counted in one pass before parsing (the parser recurses, and a deep document makes it raise
RecursionError or exhaust the stack); integers are bounded by their number of digits while parsing
(``int()`` of a long digit string is slow, and the number would be printed in messages). Any breach is
a ValueError whose text says which bound, never the content.
"""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 20  # above any count or microsecond timestamp this program writes


def depth_ok(data: bytes, max_depth: int) -> bool:
    """Whether arrays and objects nest at most ``max_depth`` deep (strings skipped, escapes honoured)."""
    if data.count(b"[") + data.count(b"{") <= max_depth:  # the usual small document: no scan needed
        return True
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"holds a number of more than {MAX_INT_DIGITS} digits")
    return int(text)


def loads(data: bytes, max_depth: int) -> Any:
    """The document in ``data``; ValueError naming the bound it breaks or saying it is not JSON."""
    if not depth_ok(data, max_depth):
        raise ValueError(f"nests deeper than {max_depth} levels")
    try:
        return json.loads(data, parse_int=_bounded_int)
    except RecursionError:  # a last resort: depth_ok should have refused it
        raise ValueError(f"nests deeper than {max_depth} levels") from None
