"""`acme renew` and `acme status`: observe the web certificate and the record, decide, then act.

`renew` installs a new pair with `web install`'s checks (the desired state's web pair, ssl-web.key +
ssl-web.crt with the seed's names, the old pair kept as .previous) as the change of one
``Reconciler.run``: the web stores are rebuilt in the same lock session and the hooks run before it
exits, daemon or none. Nothing in the ssl dir changes on a failure to get or install the pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sslreconciler.cluster.acme.observe import Observed, cert_facts, memory, notes, observe
from sslreconciler.cluster.acme.record import account_key, ran_well, write_record
from sslreconciler.cluster.layout import web_pair
from sslreconciler.config.desired import Acme, DesiredState, resolve_password
from sslreconciler.model.errors import CommandError, ConfigError
from sslreconciler.model.findings import FindingCode, SourceError, error
from sslreconciler.model.text import printable
from sslreconciler.reconcile.acme_decide import CertFacts, Decision, decide, is_overdue, iso, renewal_point
from sslreconciler.reconcile.acme_state import AcmeRecord

if TYPE_CHECKING:
    from sslreconciler.cluster.acme.judge import Judged
    from sslreconciler.reconcile.report import Report

EXIT_OK, EXIT_FAILED = 0, 1


@dataclass
class Outcome:
    exit_code: int
    lines: list[str]
    doc: dict[str, Any] = field(default_factory=dict)

    def render(self, as_json: bool) -> str:
        # escaped line by line: the server's words, a certificate's subject and the state dir's record
        # (the service user's) must not drive the terminal of whoever runs this
        return json.dumps(self.doc, indent=2) if as_json else "\n".join(printable(line) for line in self.lines)


def _new_key(key_type: str) -> bytes:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ec-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.removeprefix("rsa")))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _hmac_key(acme: Acme, desired_file: Path) -> str | None:
    """The EAB HMAC key, checked before anything is sent; an error never shows the key."""
    from sslreconciler.cluster.acme.client import decode_hmac_key

    if acme.eab is None:
        return None
    try:
        key = resolve_password(acme.eab.hmac_key)
        decode_hmac_key(key)
    except ValueError as exc:
        raise ConfigError(desired_file, str(exc), "acme.eab.hmac_key") from None
    return key


def _save(state_dir: Path, record: AcmeRecord, lines: list[str]) -> None:
    try:
        write_record(state_dir, record)
    except OSError as exc:
        lines.append(f"warning: state dir {state_dir}: cannot save the ACME record: {exc.strerror}")


def _doc(obs: Observed, decision: Decision, record: AcmeRecord) -> dict[str, Any]:
    return {
        "directory": obs.acme.directory,
        "names": obs.names,
        "certificate": None
        if obs.cert is None
        else {
            "fingerprint_sha256": obs.cert.fingerprint,
            "names": sorted(obs.cert.names),
            "not_after": iso(obs.cert.not_after),
            "issued_by_acme": obs.cert.fingerprint == record.issued_fingerprint,
        },
        "renewal_due": iso(decision.renewal_due) if decision.renewal_due else None,
        "renew": decision.renew,
        "reason": decision.reason,
        "next_attempt": iso(decision.next_attempt) if decision.next_attempt else None,
        "record": json.loads(record.to_json()),
    }


def renew(
    desired: DesiredState,
    desired_file: Path,
    ssl_dir: Path,
    state_dir: Path,
    force: bool,
    hook_timeout: float,
    daemon_state_dir: Path | None = None,  # where the hooks' results are left for the daemon
) -> Outcome:
    from sslreconciler.cluster.acme import client, transport
    from sslreconciler.cluster.acme.judge import judge

    obs = observe(desired, desired_file, ssl_dir, state_dir)
    hmac_key = _hmac_key(obs.acme, desired_file)
    now = dt.datetime.now(dt.UTC)
    timeout_s = obs.acme.timeout_s
    until = time.monotonic() + timeout_s  # every exchange with the server, all together, ends by then
    record = obs.record
    ari: dt.datetime | None = None
    session: client.Session | None = None
    if obs.cert_pem is not None and obs.wanted.renew_before is None and not force:
        # The server's renewal window (ARI) when it has one; unreachable now means: decide without it.
        cert_pem = obs.cert_pem
        with contextlib.suppress(client.AcmeFailure, SourceError, OSError):
            known_key = account_key(state_dir)
            session, ari = transport.within(until, timeout_s, lambda: _ari(obs.acme, known_key, cert_pem))
    decision = decide(now, obs.wanted, obs.cert, memory(record), ari, force)
    record.last_attempt = iso(now)
    if decision.renewal_due is not None:
        record.renewal_due = iso(decision.renewal_due)
        record.not_after = iso(obs.cert.not_after) if obs.cert else None
    if not decision.renew:
        backing_off = decision.backing_off
        lines = [*notes(obs), decision.reason]
        if backing_off:
            record.last_result = "backing-off"
        else:
            ran_well(record, "nothing-to-do", iso(now))
        record.last_message = decision.reason
        _save(state_dir, record, lines)
        return Outcome(EXIT_FAILED if backing_off else EXIT_OK, lines, _doc(obs, decision, record))
    lines = [*notes(obs), f"renewing the web certificate for {', '.join(obs.names)}: {decision.reason}"]
    before = dataclasses.replace(record)
    try:
        try:
            key = account_key(state_dir)
        except SourceError as exc:
            raise client.AcmeFailure("account-key", f"{exc.finding.file}: {exc.finding.reason}") from None
        except OSError as exc:
            raise client.AcmeFailure("account-key", f"state dir {state_dir}: {exc.strerror}") from None
        key_pem = _new_key(obs.acme.key_type)
        known = session

        def order() -> bytes:  # on a worker: network only, nothing written
            with client.failures_explained(obs.acme.directory):
                current = known or client.connect(obs.acme, key)
                client.register(current, obs.acme, hmac_key)
                return client.order_certificate(current, obs.acme, obs.names, key_pem, until)

        judged = judge(transport.within(until, timeout_s, order), key_pem, obs.names)
        facts = cert_facts(judged.leaf)  # the leaf installed, whatever order the server sent
        due = renewal_point(facts, obs.wanted.renew_before, None)
        # Saved before the install: the daemon reacts to the new files at once and reads this record.
        _record_success(record, obs, facts, due, now)
        _save(state_dir, record, lines)
        message, reconciled = _install(
            desired, desired_file, ssl_dir, state_dir, (hook_timeout, daemon_state_dir), judged, key_pem
        )
    except client.AcmeFailure as exc:
        record = before
        finding = error(
            obs.acme.directory, f"ACME {exc.kind}: {exc.detail}; nothing in {ssl_dir} changed", FindingCode.ACME
        )
        record.last_result = "failed"
        same_config = record.failed_config_key == obs.wanted.config_key
        record.failures = (record.failures if same_config else 0) + 1  # a new configuration starts afresh
        record.last_failure = iso(now)
        record.failed_config_key = obs.wanted.config_key
        record.last_error = {"type": exc.kind, "detail": exc.detail}
        record.last_message = str(finding)
        lines.append(str(finding))
        _save(state_dir, record, lines)
        return Outcome(EXIT_FAILED, lines, {**_doc(obs, decision, record), "finding": finding.to_dict()})
    lines += [message, f"valid until {iso(facts.not_after)}; renewal point {iso(due)}"]
    lines += reconciled.render_text().splitlines()
    obs = Observed(obs.acme, obs.names, obs.wanted, facts, None, record)
    doc = _doc(obs, Decision(False, "issued", due, due), record)
    return Outcome(EXIT_OK, lines, {**doc, "reconcile": reconciled.to_dict()})


def _record_success(record: AcmeRecord, obs: Observed, facts: CertFacts, due: dt.datetime, now: dt.datetime) -> None:
    record.directory, record.names = obs.acme.directory, obs.names
    record.issued_fingerprint, record.issued_at = facts.fingerprint, iso(now)
    record.not_after, record.renewal_due = iso(facts.not_after), iso(due)
    ran_well(record, "issued", iso(now))
    record.last_message = f"issued for {', '.join(obs.names)}, valid until {iso(facts.not_after)}"


def _ari(acme: Acme, key: ec.EllipticCurvePrivateKey, cert_pem: bytes) -> tuple[Any, dt.datetime | None]:
    from sslreconciler.cluster.acme import client

    with client.failures_explained(acme.directory):
        session = client.connect(acme, key)
    return session, client.renewal_window_start(session, cert_pem)


def _install(
    desired: DesiredState,
    desired_file: Path,
    ssl_dir: Path,
    state_dir: Path,
    hooks: tuple[float, Path | None],  # the default timeout, and where the results are left for the daemon
    judged: Judged,
    key_pem: bytes,
) -> tuple[str, Report]:
    """Install with `web install`'s checks (.previous pair, atomic writes) from memory, as the change of one
    reconcile: nothing is written outside the ssl dir, and the stores and hooks follow before we exit."""
    from sslreconciler.cluster import webcert
    from sslreconciler.cluster.acme.client import AcmeFailure
    from sslreconciler.reconcile.reconciler import Reconciler, run_hooks_now

    def change(ssl_fd: int) -> str:
        installed = webcert.install_data_at(
            ssl_dir, ssl_fd, web, desired, judged.pem(), key_pem, "the ACME certificate"
        )
        return installed.message

    try:
        web = web_pair(desired)
        outcome = Reconciler(ssl_dir, state_dir, desired_file).run(desired, change=change)
    except CommandError as exc:
        raise AcmeFailure("install", str(exc)) from None
    except OSError as exc:
        raise AcmeFailure("install", f"{ssl_dir}: {exc.strerror}") from None
    if outcome.change_said is None:  # the ssl dir could not be opened or locked: nothing installed
        raise AcmeFailure("install", "; ".join(str(f) for f in outcome.report.findings) or f"{ssl_dir}: not installed")
    run_hooks_now(outcome, ssl_dir, hooks[0], hooks[1], "acme renew")
    said = outcome.change_said + (f"\nwarning: {outcome.hooks_unseen}." if outcome.hooks_unseen else "")
    return said, outcome.report


def status(desired: DesiredState, desired_file: Path, ssl_dir: Path, state_dir: Path) -> Outcome:
    """What `renew` would do now (without asking the server), and how the last run went."""
    obs = observe(desired, desired_file, ssl_dir, state_dir)
    now = dt.datetime.now(dt.UTC)
    decision = decide(now, obs.wanted, obs.cert, memory(obs.record))
    record = obs.record
    lines = [*notes(obs), f"ACME directory {obs.acme.directory}; names {', '.join(obs.names)}"]
    if obs.cert is None:
        lines.append("web certificate: none of its own")
    else:
        origin = "issued by acme renew" if obs.cert.fingerprint == record.issued_fingerprint else "dropped in"
        lines.append(
            f"web certificate: {', '.join(sorted(obs.cert.names)) or '(no DNS names)'}, valid until "
            f"{iso(obs.cert.not_after)} ({origin})"
        )
    lines.append(("renew now: " if decision.renew else "") + decision.reason)
    if record.last_attempt:
        lines.append(f"last run {record.last_attempt}: {record.last_result}")
        if record.last_error:
            lines.append(f"  last error: {record.last_error.get('type', '?')}: {record.last_error.get('detail', '')}")
    overdue = is_overdue(decision.renewal_due, now)
    if overdue:
        lines.append("WARNING: the renewal is overdue")
    code = EXIT_FAILED if decision.renew or record.last_result == "failed" or overdue else EXIT_OK
    return Outcome(code, lines, {**_doc(obs, decision, record), "overdue": overdue})
