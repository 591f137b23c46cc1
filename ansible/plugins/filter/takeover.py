"""Filters for the pre-flight (roles/node/tasks/preflight.yml): what a node depends on against what the
staging area holds, before ``init-ca`` or any bundle install writes anything anywhere.

``takeover_problems``: (one node's ``pki node-cas --json``, the master's ``pki cas --json``) -> the CAs the
node depends on that the staging area does not know (not its current, previous or a CA it retired), each
``{"node", "subject", "fingerprint", "why"}``; and, when the node could not tell what it depends on (its answer
says ``"complete": false``), one ``{"node", "unknown": [reasons]}``. ``takeover_message``: those as the play's
one message: the node, each CA by subject and SHA-256 fingerprint or why it is unknown, and the ways on.
"""

from __future__ import annotations

from typing import Any


def takeover_problems(node: dict[str, Any], staging: dict[str, Any]) -> list[dict[str, Any]]:
    known = {str(ca.get("fingerprint", "")).lower() for ca in (staging or {}).get("cas", [])}
    host = str((node or {}).get("host", "?"))
    unknown: list[dict[str, Any]] = []
    if (node or {}).get("complete", True) is not True:  # an older node-cas says nothing: complete
        unknown = [{"node": host, "unknown": [str(r) for r in node.get("incomplete") or []] or ["no reason given"]}]
    return unknown + [
        {
            "node": host,
            "subject": ca.get("subject") or "(no file in authorities/ holds it)",
            "fingerprint": str(ca.get("fingerprint", "")).lower(),
            "why": list(ca.get("why", [])),
        }
        for ca in (node or {}).get("cas", [])
        if str(ca.get("fingerprint", "")).lower() not in known
    ]


def takeover_message(problems: list[dict[str, Any]], staging: str) -> str:
    unknown = "; ".join(f"{p['node']}: {', '.join(p['unknown'])}" for p in problems if "unknown" in p)
    cas = "; ".join(
        f"{p['node']} depends on {p['subject']} (SHA-256 {p['fingerprint']}; {', '.join(p['why'])})"
        for p in problems
        if "unknown" not in p
    )
    out = []
    if unknown:
        out.append(
            f"Pre-flight: cannot tell which cluster CAs a node depends on ({unknown}); nothing was written. "
            "Make the ssl dir and its authorities/ real "
            "directories the service user does not reach through a link, with a handful of entries, as the "
            "reconcile expects, then run again; or leave the node out with --limit."
        )
    if cas:
        out.append(
            f"Pre-flight: {cas}, which the staging area {staging} does not hold. Going on would make or use another "
            "CA and remove that trust from a running cluster; nothing was written. Either point sslreconciler_staging "
            "at the staging area that holds that CA, or take the cluster over with playbooks/takeover.yml "
            '(docs/fleet.md, "Taking over a running cluster").'
        )
    return " ".join(out)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"takeover_problems": takeover_problems, "takeover_message": takeover_message}
