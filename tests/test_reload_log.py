"""One log line when the daemon takes a new desired state, naming what changed (issue 26): the pure diff
as a table, then the real daemon's line after an edit of the file and after SIGHUP.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from daemonkit import RunningDaemon, wait_until

from sslreconciler.config.desired import DesiredState
from sslreconciler.daemon.desired import changes

from pkitools import Issued, seed_node

HOST = "master.example.com"
APACHE = {"name": "reload-apache", "after": ["ssl-web.keystore"], "command": ["/bin/true"]}
ACME = {"directory": "https://acme.example.org/dir", "names": [HOST], "challenge": {"webroot": "/var/www/acme"}}
SEED_PAIRS: list[dict[str, Any]] = [
    {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore", "pkcs12": "ssl.p12"},
    {
        "name": "ssl-web",
        "key": "ssl-web.key",
        "cert": "ssl-web.crt",
        "keystore": "ssl-web.keystore",
        "pkcs12": "ssl-web.p12",
    },
]


def state(**fields: Any) -> DesiredState:
    return DesiredState.model_validate({"hostname": HOST, **fields})


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ({}, {"hooks": [APACHE]}, "hooks +'reload-apache'"),
        ({"hooks": [APACHE], "acme": ACME}, {}, "hooks -'reload-apache', acme removed"),
        ({"hooks": [APACHE]}, {"hooks": [{**APACHE, "timeout": 5}]}, "hooks ~'reload-apache'"),
        ({}, {"acme": ACME}, "acme added"),
        ({"acme": ACME}, {"acme": {**ACME, "names": ["other.example.com"]}}, "acme changed"),
        ({}, {"policy": {"weak_signature": "warning"}}, "policy changed"),
        ({"pairs": SEED_PAIRS}, {"pairs": SEED_PAIRS[:1]}, "pairs -ssl-web, outputs -ssl-web.keystore -ssl-web.p12"),
        (
            {"pairs": SEED_PAIRS},
            {"pairs": [SEED_PAIRS[0], {**SEED_PAIRS[1], "pkcs12": None}]},
            "pairs ~ssl-web, outputs -ssl-web.p12",
        ),
        ({}, {"expiry_warning_days": 10}, "also expiry_warning_days"),
        ({}, {}, "no difference in what it asks for"),
    ],
)
def test_changes_table(old: dict[str, Any], new: dict[str, Any], said: str) -> None:
    assert changes(state(**old), state(**new)) == said


def reload_lines(d: RunningDaemon) -> list[str]:
    return [str(e.get("event")) for e in d.logs() if str(e.get("event", "")).startswith("desired state reloaded")]


def test_the_daemon_logs_one_line_naming_what_changed(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    node.desired.write_text(json.dumps({"hostname": HOST, "acme": ACME}))
    d = RunningDaemon(node, tmp_path / "d")
    try:
        d.start()
        assert reload_lines(d) == []
        node.desired.write_text(json.dumps({"hostname": HOST, "hooks": [APACHE]}))  # an edit: the file event
        wait_until(lambda: reload_lines(d), 60, "the reload line")
        assert reload_lines(d) == ["desired state reloaded: hooks +'reload-apache', acme removed"]
        node.desired.write_text(
            json.dumps({"hostname": HOST, "hooks": [APACHE], "policy": {"weak_signature": "warning"}})
        )
        d.send(signal.SIGHUP)
        wait_until(lambda: len(reload_lines(d)) == 2, 60, "the second reload line")
        assert reload_lines(d)[1] == "desired state reloaded: policy changed"
        entry = [e for e in d.logs() if str(e.get("event", "")).startswith("desired state reloaded")][1]
        assert entry["level"] == "info" and entry["file"] == str(node.desired)
    finally:
        d.close()
