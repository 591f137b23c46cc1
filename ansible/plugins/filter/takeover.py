"""Filters for the pre-flight (roles/node/tasks/preflight.yml): what a node depends on against what the
staging area holds, before ``init-ca`` or any bundle install writes anything anywhere.

``takeover_problems``: (one node's ``pki node-cas --json``, the master's ``pki cas --json``) -> the CAs the
node depends on that the staging area does not know (not its current, previous or a CA it retired), each
``{"node", "subject", "fingerprint", "why"}``. ``takeover_message``: those as the play's one message: the
node, each CA by subject and SHA-256 fingerprint, and the two ways on.
"""

from __future__ import annotations

from typing import Any


def takeover_problems(node: dict[str, Any], staging: dict[str, Any]) -> list[dict[str, Any]]:
    known = {str(ca.get("fingerprint", "")).lower() for ca in (staging or {}).get("cas", [])}
    return [
        {
            "node": str((node or {}).get("host", "?")),
            "subject": ca.get("subject") or "(no file in authorities/ holds it)",
            "fingerprint": str(ca.get("fingerprint", "")).lower(),
            "why": list(ca.get("why", [])),
        }
        for ca in (node or {}).get("cas", [])
        if str(ca.get("fingerprint", "")).lower() not in known
    ]


def takeover_message(problems: list[dict[str, Any]], staging: str) -> str:
    cas = "; ".join(
        f"{p['node']} depends on {p['subject']} (SHA-256 {p['fingerprint']}; {', '.join(p['why'])})" for p in problems
    )
    return (
        f"Pre-flight: {cas}, which the staging area {staging} does not hold. Going on would make or use another CA "
        "and remove that trust from a running cluster; nothing was written. Either point sslreconciler_staging at "
        "the staging area that holds that CA, or take the cluster over with playbooks/takeover.yml "
        "(docs/fleet.md, \"Taking over a running cluster\")."
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"takeover_problems": takeover_problems, "takeover_message": takeover_message}
