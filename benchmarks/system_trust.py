"""`.venv/bin/python benchmarks/system_trust.py`: No-op reconcile, system trust store on vs off, interleaved to share the machine's load; min and median.
on-anchored: seed default, web pair from the cluster CA (the system store is read, not parsed).
on-public: seed default, web pair from a public-style root that is in the system store (read and parsed).
off: verify_with ["trust-sources"] for ssl-web (nothing read)."""
import json, os, subprocess, sys, time, statistics
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pkitools import seed_node, make_ca, make_host, write
from sslreconciler.config.desired import load_desired_state
from sslreconciler.reconcile.reconciler import Reconciler

import tempfile
base = Path(tempfile.mkdtemp(prefix="system-trust-bench-"))
ca = make_ca("ca.bench"); root = make_ca("Bench Public Root"); inter = make_ca("Bench Issuing", issuer=root)
sysdir = base / "sys"; sysdir.mkdir(parents=True)
bundle = sysdir / "bundle.crt"
bundle.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes() + root.cert_pem())
web = {"name": "ssl-web", "key": "ssl-web.key", "cert": "ssl-web.crt", "keystore": "ssl-web.keystore",
       "pkcs12": "ssl-web.p12", "verify": "if-available", "fallback": "ssl"}
ssl_ = {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore", "pkcs12": "ssl.p12"}
env = {**os.environ, "SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": "/etc/ssl/certs"}
os.environ.update(env)
setups = {}
for mode in ("on-anchored", "on-public", "off"):
    node = seed_node(base / mode, "master.example.com", ca, web=True)
    if mode == "on-public":
        leaf = make_host(inter, node.host)
        write(node.ssl_dir / "ssl-web.key", leaf.key_pem(), 0o600)
        write(node.ssl_dir / "ssl-web.crt", leaf.cert_pem() + inter.cert_pem())
    if mode == "off":
        node.desired.write_text(json.dumps({"hostname": node.host, "pairs": [ssl_, {**web, "verify_with": ["trust-sources"]}]}))
    desired = load_desired_state(node.desired)
    r = Reconciler(node.ssl_dir, base / f"state-{mode}", node.desired)
    out = r.run(desired)
    assert not [f for f in out.report.findings if f.level.value == "error"], out.report.findings
    setups[mode] = (node, desired, r, [], [])
for _ in range(60):
    for mode, (node, desired, r, times, _) in setups.items():
        t = time.perf_counter(); r.run(desired); times.append((time.perf_counter() - t) * 1000)
for _ in range(8):
    for mode, (node, desired, r, _, procs) in setups.items():
        cmd = [sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(node.ssl_dir), "--desired-state",
               str(node.desired), "--state-dir", str(base / f"state-{mode}")]
        t = time.perf_counter(); subprocess.run(cmd, check=True, capture_output=True, env=env); procs.append((time.perf_counter() - t) * 1000)
for mode, (_, _, _, times, procs) in setups.items():
    print(f"{mode:12s} daemon no-op min {min(times):5.1f} ms median {statistics.median(times):5.1f} ms | "
          f"one-shot process min {min(procs):4.0f} ms median {statistics.median(procs):4.0f} ms")
subprocess.run(["rm", "-rf", str(base)])
