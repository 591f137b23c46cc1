"""Filters for the collect playbook and the health gates.

``fleet_expected``: the staging area's CA certificates (as the collect role reads them on the master: those whose
key is staged and those the rotation record names, a CA imported trust-only included) -> the CAs every bundle
carries, each ``{subject, fingerprint, pem}``: the rotation record's current and previous CA when there is a
record, else the one self-signed CA certificate whose key is staged.
``fleet_report``: {node: health document}, the expected CAs and {node: extra CA PEMs} -> rows (node, status,
CA set, fingerprint, ssl and web expiry, verdict, reason). The verdict is the node's own report, checked for
shape first: ``invalid`` (wrong shape or types, a ``fingerprint`` that disagrees with ``cas``, ``authorities``
naming other CAs than ``cas``); ``ok`` when the CAs ``trust.cas`` lists are the expected set (the staging
area's CAs plus what its own ``sslreconciler_trust_extra`` adds) and ``trust.fingerprint`` is that set's (a
node without ``cas`` by ``fingerprint`` alone); ``DRIFT`` (with the CAs ``extra`` and ``missing``, by subject
and SHA-256 fingerprint) when they differ; ``unreachable`` when it gave no /health; ``unknown`` when it
reports no trust set or there is no expected set (no CA staged). Never a majority: every node is judged on its
own, so 1, 2 or many nodes, one down or not, are judged alike. Every string a node sent reaches a row through
``clean`` (no control characters, at most ``CAP`` characters): a node cannot forge or stretch report lines.
``fleet_table``: the rows as a fixed-width text table, then one line per CA a drifted node has extra or lacks.
``fleet_summary``: the counts, with the reason of every ``invalid`` and ``unknown`` node.
``health_findings``: a health document's findings, one line each (code, file, reason).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
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
    """{stem: PEM} of the staged certificates (those whose key is staged and those the record names), and the
    parsed ca-rotation.json (or None)."""
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


_HEX64 = re.compile(r"[0-9a-f]{64}")
NO_CA = "no CA in the staging area"
CAP = 160  # the longest string a row keeps: a node's 200 KB status never stretches the table
MAX_LISTED = 32  # the most CAs a row names (authorities) and the table lists per node and kind (extra, missing)


def clean(value: Any, cap: int = CAP) -> str:
    """A string a node sent, fit for one table cell: control and format characters (newlines, escapes, bidi
    overrides) dropped, at most ``cap`` characters."""
    text = "".join(ch for ch in str(value) if not unicodedata.category(ch).startswith("C"))
    return text if len(text) <= cap else text[: cap - 1] + "\u2026"


def _shape(doc: Any) -> str | None:
    """Why a /health document cannot be judged (its shape or types are wrong), or None when it can."""
    if not isinstance(doc, dict):
        return f"the document is a {type(doc).__name__}, not an object"
    if not isinstance(doc.get("status", ""), str):
        return "status is not a string"
    arts = doc.get("artifacts", {})
    if not isinstance(arts, dict) or not all(isinstance(a, dict) for a in arts.values()):
        return "artifacts is not an object of objects"
    for a in arts.values():
        cert = a.get("certificate", {})
        if not isinstance(cert, (dict, type(None))) or not isinstance((cert or {}).get("not_after", ""), str):
            return "an artifact's certificate is not an object with a string not_after"
    if not isinstance(doc.get("findings", []), (list, type(None))):
        return "findings is not a list"
    trust = doc.get("trust")
    if trust is None:
        return None
    if not isinstance(trust, dict):
        return "trust is not an object"
    fp, auth, cas = trust.get("fingerprint"), trust.get("authorities", []), trust.get("cas")
    if fp is not None and not (isinstance(fp, str) and _HEX64.fullmatch(fp)):
        return "trust.fingerprint is not 64 lowercase hex digits"
    if not isinstance(auth, list) or not all(isinstance(a, str) for a in auth):
        return "trust.authorities is not a list of strings"
    if cas is None:
        return None
    if not isinstance(cas, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("fingerprint"), str)
        and _HEX64.fullmatch(c["fingerprint"])
        and isinstance(c.get("subject", ""), str)
        and isinstance(c.get("alias", ""), str)
        for c in cas
    ):
        return "trust.cas is not a list of {alias, subject, fingerprint} objects"
    if sorted(auth) != sorted(str(c.get("alias", "")) for c in cas):
        return f"trust.authorities names {len(auth)} CA(s) but trust.cas lists {len(cas)} (or other aliases)"
    return None


def _expiry(doc: dict[str, Any], artifact: str) -> str:
    cert = (doc.get("artifacts") or {}).get(artifact, {}).get("certificate") or {}
    return clean(cert.get("not_after", "-"), 40)


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


def _verdict(
    verdict: str, reason: str = "", extra: list[Any] | None = None, missing: list[Any] | None = None
) -> dict[str, Any]:
    return {"verdict": verdict, "reason": reason, "extra": extra or [], "missing": missing or []}


def _judge(doc: Any, want: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The node's own report against the expected set: ``cas`` (when the node sends it) is what is judged, and
    its ``fingerprint`` must agree with it; an older node without ``cas`` is judged by ``fingerprint`` alone."""
    if not doc:
        return _verdict("unreachable", "no /health")
    if (why := _shape(doc)) is not None:
        return _verdict("invalid", why)
    trust = doc.get("trust") or {}
    if not trust.get("fingerprint"):
        return _verdict("unknown", "no trust set reported")
    if want is None:
        return _verdict("unknown", NO_CA)
    expected_fp = _set_fingerprint([w["der"] for w in want.values()])
    if trust.get("cas") is None:
        return _verdict("ok") if trust["fingerprint"] == expected_fp else _verdict("DRIFT", "trust.fingerprint differs")
    has = {c["fingerprint"]: c for c in trust["cas"]}
    extra = [
        {"subject": clean(c.get("subject", "")), "fingerprint": f, "alias": clean(c.get("alias", ""))}
        for f, c in sorted(has.items())
        if f not in want
    ]
    missing = [{"subject": clean(w["subject"]), "fingerprint": f} for f, w in sorted(want.items()) if f not in has]
    if extra or missing:
        return _verdict("DRIFT", "trust.cas differs from the expected set", extra, missing)
    if trust["fingerprint"] != expected_fp:
        return _verdict("invalid", "trust.fingerprint disagrees with the CAs trust.cas lists")
    return _verdict("ok")


def fleet_report(
    docs: dict[str, Any], expected: list[dict[str, str]] | None = None, extras: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    rows = []
    for node in sorted(docs):
        doc = docs[node] or {}
        judged = _judge(doc, _want(expected, (extras or {}).get(node, [])) if expected else None)
        sane = judged["verdict"] != "invalid"
        trust = (doc.get("trust") or {}) if sane else {}
        rows.append(
            {
                "node": clean(node),
                "status": clean(doc.get("status", "unreachable")) if sane else "invalid",
                "authorities": [clean(a) for a in trust.get("authorities", [])[:MAX_LISTED]],
                "fingerprint": trust.get("fingerprint") or "-",
                "ssl_expiry": _expiry(doc, "ssl.keystore") if sane else "-",
                "web_expiry": _expiry(doc, "ssl-web.keystore") if sane else "-",
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
            clean(",".join(r["authorities"])) or "-",
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
            cas = r.get(kind) or []
            out += [f"{r['node']}: {kind} {c['subject']} (SHA-256 {c['fingerprint']})" for c in cas[:MAX_LISTED]]
            out += [f"{r['node']}: {kind} {len(cas) - MAX_LISTED} more CAs"] if len(cas) > MAX_LISTED else []
    return "\n".join(out)


def fleet_summary(rows: list[dict[str, Any]]) -> str:
    count = {v: sum(1 for r in rows if r.get("verdict") == v) for v in ("ok", "DRIFT", "unreachable")}
    down = [r["node"] for r in rows if r.get("verdict") == "unreachable"]
    out = f"{len(rows)} nodes: {count['ok']} ok, {count['DRIFT']} drifted, {count['unreachable']} unreachable"
    out += f" ({', '.join(down)})" if down else ""
    for verdict, label in (("invalid", "invalid"), ("unknown", "not judged")):
        why: dict[str, list[str]] = {}
        for r in rows:
            if r.get("verdict") == verdict:
                why.setdefault(r.get("reason") or "?", []).append(r["node"])
        if why:
            n = sum(len(v) for v in why.values())
            parts = [k if k == NO_CA else f"{', '.join(v)}: {k}" for k, v in why.items()]
            out += f", {n} {label} ({'; '.join(parts)})"
    return out


def health_findings(doc: Any) -> list[str]:
    """One line per finding: ``CODE FILE: REASON`` (never the document itself); a document of the wrong shape
    is one line saying so."""
    findings = doc.get("findings") if isinstance(doc, dict) else None
    if (doc and not isinstance(doc, dict)) or not isinstance(findings, (list, type(None))):
        return ["error invalid -: the /health document is not an object with a list of findings."]
    lines = []
    for f in findings or []:
        f = f if isinstance(f, dict) else {"reason": f"a finding that is not an object: {f!r}"}
        parts = (f.get("level", "error"), f.get("code", "?"), f.get("file", "-"), f.get("reason", ""))
        lines.append("{} {} {}: {}".format(*(clean(p, 400) for p in parts)))
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
