"""End to end with Debian's monitoring stack: the daemon writes its textfile, `prometheus-node-exporter`
(textfile collector only) serves it on 127.0.0.1, a real `prometheus` scrapes it every second and
evaluates the shipped rules: a node whose web certificate is inside the warning window makes the
renewal alert fire (read from /api/v1/alerts), and every query of the shipped Grafana dashboard runs
against that Prometheus without error (/api/v1/query)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemonkit import RunningDaemon, wait_until

from pkitools import Issued, make_host, seed_node, write

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "monitoring" / "sslreconciler.rules.yml"
DASHBOARD = REPO / "monitoring" / "grafana-dashboard.json"
NODE_EXPORTER = "prometheus-node-exporter"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which(NODE_EXPORTER) is None,
                       reason="prometheus / prometheus-node-exporter not installed (make tools)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Processes:
    """Servers started by a test, all stopped when it ends, failed or not."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, proc))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{(self.log_dir / f'{n}.log').read_text()[-3000:]}" for n, _ in self.procs)

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target, and each template variable's query."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        out += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":  # label_values(SELECTOR, LABEL): the selector is the PromQL part
            m = re.fullmatch(r"label_values\((.*), *(\w+)\)", var["query"]["query"])
            assert m, var["query"]
            out.append((f"variable {var['name']}", m.group(1)))
    return out


# What Grafana puts in place of its variables: every node, every job, the built-in intervals.
GRAFANA_VARIABLES = {"job": ".*", "instance": ".*", "__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def _substituted(expr: str) -> str:
    out = re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES[m.group(1)], expr)
    assert "$" not in out, out
    return out


def test_dashboard_names_only_known_variables() -> None:
    queries = _dashboard_queries()
    assert len(queries) >= 15
    for _, expr in queries:
        _substituted(expr)  # a KeyError names a variable the test does not know


def test_expiring_certificate_fires_through_node_exporter_and_prometheus(
    tmp_path: Path, ca: Issued, servers: Processes
) -> None:
    node = seed_node(tmp_path / "n", "pbx1.example.com", ca, web=True)
    soon = make_host(ca, "pbx1.example.com", days=20)  # inside the default 30-day warning window
    write(node.ssl_dir / "ssl-web.key", soon.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", soon.cert_pem())
    textdir = tmp_path / "textfile"
    textdir.mkdir(mode=0o755)
    daemon = RunningDaemon(node, tmp_path / "d", settings=f'metrics_textfile = "{textdir / "sslreconciler.prom"}"')
    try:
        daemon.start()
        wait_until((textdir / "sslreconciler.prom").is_file, timeout=60, what="the daemon's textfile")

        exporter_port, prom_port = _free_port(), _free_port()
        servers.start("node-exporter", [
            NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{exporter_port}", "--collector.disable-defaults",
            "--collector.textfile", f"--collector.textfile.directory={textdir}"])
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "node",
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }))
        servers.start("prometheus", [
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}"])
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        try:
            wait_until(lambda: _ready(f"http://127.0.0.1:{prom_port}/-/ready"), timeout=90, what="prometheus ready")

            def renewal_alerts() -> list[dict[str, Any]]:
                alerts = _get(f"{api}/alerts")["data"]["alerts"]
                return [a for a in alerts if a["labels"]["alertname"] == "SslReconcilerCertificateRenewal"
                        and a["state"] == "firing"]

            wait_until(renewal_alerts, timeout=120, what="SslReconcilerCertificateRenewal firing")
            firing = renewal_alerts()
            # the web pair's certificate, wherever the node holds it; never the 825-day host certificate
            assert {a["labels"]["serial_number"] for a in firing} == {f"{soon.cert.serial_number:x}"}
            # one alert for the certificate, however many files hold it; its description names them
            assert len(firing) == 1, firing
            one = firing[0]
            assert one["labels"]["instance"] == f"127.0.0.1:{exporter_port}" and one["labels"]["severity"] == "warning"
            assert "filepath" not in one["labels"]
            assert one["annotations"]["description"].startswith(
                f'Certificate for "pbx1.example.com" (serial {soon.cert.serial_number:x}) on')
            assert "ssl-web.crt, ssl-web.keystore" in one["annotations"]["description"]
            assert "expires in 19 days" in one["annotations"]["description"] or "expires in 20 days" in one[
                "annotations"]["description"]

            # every dashboard query, as Grafana would send it, runs; the core panels have data
            for title, expr in _dashboard_queries():
                query = _substituted(expr)
                answer = _get(f"{api}/query?" + urllib.parse.urlencode({"query": query}))
                assert answer["status"] == "success", (title, query, answer)
                if title in ("Status per node", "Certificates: days left", "Trust set per node",
                             "Metrics age per node", "variable job", "variable instance"):
                    assert answer["data"]["result"], (title, query)
            status = _get(f"{api}/query?" + urllib.parse.urlencode(
                {"query": _substituted(_dashboard_queries()[0][1])}))["data"]["result"]
            assert [r["metric"]["status"] for r in status] == ["warning"]  # the daemon's own expiring warning
        except AssertionError:
            print(servers.logs())
            raise
    finally:
        daemon.close()
