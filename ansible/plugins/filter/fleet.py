"""Filters for the collect playbook and the health gates.

``fleet_expected``: the staging area's CA certificates (as the collect role reads them on the master) -> the
CAs every bundle carries, each ``{subject, fingerprint, pem}``: the rotation record's current and previous CA
when there is a record, else the one self-signed CA certificate whose key is staged.
``fleet_report``: {node: health document}, the expected CAs and {node: extra CA PEMs} -> rows (node, status,
CA set, fingerprint, ssl and web expiry, verdict). A node's verdict is ``ok`` when its trusted set is the
expected one (the staging area's CAs plus what its own ``sslreconciler_trust_extra`` adds), ``DRIFT`` (with the
CAs ``extra`` and ``missing``, by subject and SHA-256 fingerprint) when it is not, ``unreachable`` when it gave
no /health, ``unknown`` when there is no expected set (no CA staged). Never a majority: every node is judged
on its own, so 1, 2 or many nodes, one down or not, are judged alike.
``fleet_table``: the rows as a fixed-width text table, then one line per CA a drifted node has extra or lacks.
``health_findings``: a health document's findings, one line each (code, file, reason).
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def _ca(pem: str) -> dict[str, Any] | None:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint": hashlib.sha256(der).hexdigest(),
        "der": der,
        "cert": cert,
    }


def _is_root_ca(cert: x509.Certificate) -> bool:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    return bool(ca) and cert.issuer == cert.subject


def fleet_expected(crts: dict[str, str], record: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """{stem: PEM} of the staged certificates whose key is staged, and the parsed ca-rotation.json (or None)."""
    if record and record.get("current"):
        names = [record["current"], *([record["previous"]] if record.get("previous") else [])]
    else:
        names = [s for s, pem in sorted(crts.items()) if (c := _ca(pem)) is not None and _is_root_ca(c["cert"])]
        names = names if len(names) == 1 else []  # none, or several and no record: pki refuses too
    out = []
    for name in names:
        parsed = _ca(crts.get(name, ""))
        if parsed is not None:
            out.append(
                {"name": name, "subject": parsed["subject"], "fingerprint": parsed["fingerprint"], "pem": crts[name]}
            )
    return out


def _expiry(doc: dict[str, Any], artifact: str) -> str:
    cert = (doc.get("artifacts") or {}).get(artifact, {}).get("certificate") or {}
    return str(cert.get("not_after", "-"))


def _want(expected: list[dict[str, str]], extra_pems: list[str]) -> dict[str, dict[str, Any]]:
    want: dict[str, dict[str, Any]] = {}
    for pem in [e["pem"] for e in expected] + list(extra_pems or []):
        parsed = _ca(pem)
        if parsed is not None:
            want[parsed["fingerprint"]] = parsed
    return want


def _set_fingerprint(ders: list[bytes]) -> str:
    digest = hashlib.sha256()  # as reconcile/trustset.py: SHA-256 over the sorted DER, each once
    for der in sorted(set(ders)):
        digest.update(der)
    return digest.hexdigest()


def _judge(doc: dict[str, Any], want: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    trust = doc.get("trust") or {}
    if not doc or not trust.get("fingerprint"):
        return {"verdict": "unreachable" if not doc else "unknown", "extra": [], "missing": []}
    if want is None:
        return {"verdict": "unknown", "extra": [], "missing": []}
    if trust["fingerprint"] == _set_fingerprint([w["der"] for w in want.values()]):
        return {"verdict": "ok", "extra": [], "missing": []}
    has = {c["fingerprint"]: c for c in trust.get("cas") or []}  # absent from an older node's /health
    extra = [
        {"subject": c["subject"], "fingerprint": f, "alias": c.get("alias", "")}
        for f, c in sorted(has.items())
        if f not in want
    ]
    missing = [{"subject": w["subject"], "fingerprint": f} for f, w in sorted(want.items()) if has and f not in has]
    return {"verdict": "DRIFT", "extra": extra, "missing": missing}


def fleet_report(
    docs: dict[str, Any], expected: list[dict[str, str]] | None = None, extras: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    rows = []
    for node in sorted(docs):
        doc = docs[node] or {}
        trust = doc.get("trust") or {}
        judged = _judge(doc, _want(expected, (extras or {}).get(node, [])) if expected else None)
        rows.append(
            {
                "node": node,
                "status": doc.get("status", "unreachable"),
                "authorities": list(trust.get("authorities", [])),
                "fingerprint": trust.get("fingerprint") or "-",
                "ssl_expiry": _expiry(doc, "ssl.keystore"),
                "web_expiry": _expiry(doc, "ssl-web.keystore"),
                "drift": judged["verdict"] == "DRIFT",
                **judged,
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
            r.get("verdict") or ("DRIFT" if r["drift"] else "-"),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [head, *lines]]
    for r in rows:
        for kind in ("extra", "missing"):
            out += [f"{r['node']}: {kind} {c['subject']} (SHA-256 {c['fingerprint']})" for c in r.get(kind) or []]
    return "\n".join(out)


def fleet_summary(rows: list[dict[str, Any]]) -> str:
    count = {v: sum(1 for r in rows if r.get("verdict") == v) for v in ("ok", "DRIFT", "unreachable", "unknown")}
    down = [r["node"] for r in rows if r.get("verdict") == "unreachable"]
    return (
        f"{len(rows)} nodes: {count['ok']} ok, {count['DRIFT']} drifted, {count['unreachable']} unreachable"
        + (f" ({', '.join(down)})" if down else "")
        + (f", {count['unknown']} not judged (no CA in the staging area)" if count["unknown"] else "")
    )


def health_findings(doc: dict[str, Any]) -> list[str]:
    """One line per finding: ``CODE FILE: REASON`` (never the document itself)."""
    lines = []
    for f in (doc or {}).get("findings") or []:
        lines.append(f"{f.get('level', 'error')} {f.get('code', '?')} {f.get('file', '-')}: {f.get('reason', '')}")
    return lines or ["(no findings)"]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "fleet_expected": fleet_expected,
            "fleet_report": fleet_report,
            "fleet_table": fleet_table,
            "fleet_summary": fleet_summary,
            "health_findings": health_findings,
        }
