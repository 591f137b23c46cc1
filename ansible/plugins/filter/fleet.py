"""Filters for the collect playbook: every node's /health into one table, with drift marked.

``fleet_report``: {node: health document} -> rows (node, status, CA set, fingerprint, ssl and web expiry,
drift). A node drifts when its trusted set (the ``trust`` fingerprint) differs from the one most nodes have.
``fleet_table``: the rows as a fixed-width text table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def _expiry(doc: dict[str, Any], artifact: str) -> str:
    cert = (doc.get("artifacts") or {}).get(artifact, {}).get("certificate") or {}
    return str(cert.get("not_after", "-"))


def fleet_report(docs: dict[str, Any]) -> list[dict[str, Any]]:
    prints = {node: ((doc or {}).get("trust") or {}).get("fingerprint") for node, doc in docs.items()}
    counted = Counter(p for p in prints.values() if p)
    common = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if counted else None
    rows = []
    for node in sorted(docs):
        doc = docs[node] or {}
        trust = doc.get("trust") or {}
        fingerprint = prints[node]
        rows.append(
            {
                "node": node,
                "status": doc.get("status", "unreachable"),
                "authorities": list(trust.get("authorities", [])),
                "fingerprint": fingerprint or "-",
                "ssl_expiry": _expiry(doc, "ssl.keystore"),
                "web_expiry": _expiry(doc, "ssl-web.keystore"),
                "drift": bool(fingerprint and len(counted) > 1 and fingerprint != common) or not fingerprint,
            }
        )
    return rows


def fleet_table(rows: list[dict[str, Any]]) -> str:
    head = ("NODE", "STATUS", "TRUST", "CA SET", "SSL EXPIRY", "WEB EXPIRY", "DRIFT")
    lines = [
        (
            r["node"],
            r["status"],
            r["fingerprint"][:12],
            ",".join(r["authorities"]) or "-",
            r["ssl_expiry"][:10],
            r["web_expiry"][:10],
            "DRIFT" if r["drift"] else "-",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    return "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [head, *lines]
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fleet_report": fleet_report, "fleet_table": fleet_table}
