"""The daemon's ACME view follows the desired state and the ACME record (issue 26): a change of the record
(`acme renew`, forced or not) is shown at once, not at the next resync; a run that ends well clears the
failure count and the last error; the acme block removed leaves no ACME state and no warning, and
`acme status` says so with exit 0. `acme renew` runs against an ACME directory nobody serves (a real
connection refused) and a certificate the admin dropped in: no ACME server is needed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from acmekit import free_port
from daemonkit import RunningDaemon

from conftest import run_cli
from pkitools import Issued, make_ca, make_host, seed_node, write

HOST = "pbx.example.com"


def test_the_daemons_acme_view_follows_the_record_and_the_desired_state(
    tmp_path: Path, ca: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSLRECONCILER_STATE_DIR")  # `acme renew` and the daemon: the state dir the config says
    node = seed_node(tmp_path / "node", HOST, ca)
    # An admin's certificate 80 days into 90: its renewal point passed 20 days ago.
    old = make_host(ca, HOST, days=90, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=80))
    write(node.ssl_dir / "ssl-web.key", old.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", old.cert_pem())
    ca_file = write(tmp_path / "some-ca.pem", make_ca("unused").cert_pem())
    down = {
        "directory": f"https://localhost:{free_port()}/dir",
        "names": [HOST],
        "challenge": {"webroot": str(tmp_path / "www")},
        "ca_bundle": str(ca_file),
    }
    node.desired.write_text(json.dumps({"hostname": HOST, "acme": down}))
    # the resync is an hour away: whatever the daemon shows below, it saw at once
    d = RunningDaemon(node, tmp_path / "daemon", settings="resync_interval = 3600")

    def renew(*extra: str) -> int:
        return run_cli("acme", "renew", "--config", d.config, *extra).rc

    try:
        assert renew() == 1  # connection refused: a failed run, recorded
        d.start()
        doc = d.wait_for(lambda x: x.get("acme", {}).get("failures") == 1, what="the failed run in /health")
        assert doc["status"] == "warning" and doc["acme"]["overdue"] is True

        assert renew("--force") == 1  # a forced renewal while the daemon runs: shown at once
        d.wait_for(lambda x: x.get("acme", {}).get("failures") == 2, timeout=30, what="the forced run at once")

        # The admin drops in a fresh certificate: the next run has nothing to do and ends well.
        fresh = make_host(ca, HOST, days=90)
        write(node.ssl_dir / "ssl-web.key", fresh.key_pem(), 0o600)
        write(node.ssl_dir / "ssl-web.crt", fresh.cert_pem())
        assert renew() == 0
        doc = d.wait_for(
            lambda x: x.get("acme", {}).get("last_result") == "nothing-to-do",
            timeout=30,
            what="the run that ended well",
        )
        assert doc["acme"]["failures"] == 0 and doc["acme"]["last_error"] is None, doc["acme"]
        d.wait_for(lambda x: x["status"] == "ok", timeout=60, what="ok once the renewal is not overdue")

        # Back to hand-managed certificates (docs/acme.md): the block removed, the record still there.
        run_cli("acme", "renew", "--config", d.config, "--force")  # failing again: a failure in the record
        d.wait_for(lambda x: x.get("acme", {}).get("failures") == 1, timeout=30, what="a failure again")
        node.desired.write_text(json.dumps({"hostname": HOST}))
        doc = d.wait_for(lambda x: "acme" not in x, timeout=60, what="no ACME state without the acme block")
        assert doc["status"] == "ok", doc["findings"]
        status = run_cli("acme", "status", "--config", d.config)
        assert status.rc == 0 and "no acme block" in status.out and "docs/acme.md" in status.out, status
        as_json = run_cli("acme", "status", "--config", d.config, "--json")
        assert as_json.rc == 0 and as_json.json()["acme"] is None
        text = run_cli("status", "--config", d.config)
        assert text.rc == 0 and "acme: renewal point" not in text.out and "OVERDUE" not in text.out, text.out
    finally:
        d.close()
