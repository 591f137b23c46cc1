"""Times as the records and documents write them: ISO 8601, "Z" for UTC."""

from __future__ import annotations

import datetime as dt


def parse_utc(text: str | None) -> dt.datetime | None:
    """``text`` as an aware datetime (a naive one taken as UTC); None when it is empty or not a time."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
