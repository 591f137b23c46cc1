"""The unit, the RPM and the docs, checked with the tools an operator and a packager use."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sslreconciler.cli.app import build_parser

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "tools"))
manpage = importlib.import_module("manpage")  # tools/manpage.py, which writes docs/sslreconciler.1



@pytest.fixture(scope="session")
def rpm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which("rpmbuild"), "rpmbuild missing (.ci/run installs Debian's rpm package)"
    # `make rpm` as a packager runs it, into a build dir and dist dir of this test process's own: the
    # checkout's build/ and dist/ are the user's, and another test process may be packing the same tree.
    out = tmp_path_factory.mktemp("rpmbuild")
    proc = subprocess.run(["make", "rpm", f"RPMTOP={out / 'top'}", f"DIST={out / 'dist'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    path = out / "dist" / f"sslreconciler-{version}-1.noarch.rpm"
    assert path.exists()
    return path


@pytest.fixture(scope="session")
def rpm_root(rpm_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rpmroot")
    cpio = subprocess.run(f"rpm2cpio {shlex.quote(str(rpm_file))} | cpio -idm --quiet", shell=True, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert cpio.returncode == 0, cpio.stderr
    return root


def _rpm_query(rpm_file: Path, *args: str) -> str:
    proc = subprocess.run(["rpm", "-qp", *args, str(rpm_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_rpm_file_list(rpm_file: Path) -> None:
    files = set(_rpm_query(rpm_file, "-l").split())
    site = next(f for f in files if f.endswith("/site-packages/sslreconciler"))
    for expected in ["/usr/bin/sslreconciler", "/usr/lib/systemd/system/sslreconciler.service",
                     "/etc/sslreconciler/sslreconciler.toml", "/etc/sslreconciler/desired-state.example.json",
                     "/etc/sslreconciler/store-password", "/usr/share/man/man1/sslreconciler.1",
                     f"{site}/cli/app.py", f"{site}/daemon/loop.py", f"{site}/stores/jks.py", f"{site}/pki/verify.py",
                     "/var/lib/sslreconciler", "/usr/lib/systemd/system/sslreconciler-acme.service",
                     "/usr/lib/systemd/system/sslreconciler-acme.timer", f"{site}/cluster/acme/client.py",
                     f"{site}/reconcile/acme_decide.py", "/usr/libexec/sslreconciler/kamailio-tls-reload",
                     f"{site}/reconcile/pem.py", f"{site}/fsio/swap.py", f"{site}/model/jks_alias.py",
                     f"{site}/daemon/textfile.py", "/usr/share/sslreconciler/monitoring/sslreconciler.rules.yml",
                     "/usr/share/sslreconciler/monitoring/grafana-dashboard.json",
                     "/usr/share/sslreconciler/monitoring/tests/sslreconciler.rules.test.yml"]:
        assert expected in files, expected
    assert any(f.endswith("/operations.md") for f in files) and any(f.endswith("/README.md") for f in files)
    assert any(f.endswith("/acme.md") for f in files) and any(f.endswith("/consumers.md") for f in files)
    assert any(f.endswith("/monitoring.md") for f in files)
    # no test suite, no bytecode; the alert rules' promtool tests are shipped beside the rules on purpose
    assert not any(("tests/" in f and "/monitoring/tests/" not in f) or f.endswith(".pyc") for f in files)


@pytest.mark.slow
def test_rpm_requires_every_runtime_dependency(rpm_file: Path) -> None:
    requires = _rpm_query(rpm_file, "--requires")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[<>=!~ ]", dep, maxsplit=1)[0].lower()
        assert re.search(rf"^python3dist\({re.escape(name)}\)", requires, re.M), (name, requires)
    assert "systemd" in requires


@pytest.mark.slow
def test_rpm_scripts_and_config_files(rpm_file: Path) -> None:
    scripts = _rpm_query(rpm_file, "--scripts")
    assert "systemctl --no-reload preset sslreconciler.service" in scripts or "install-system-units" in scripts
    assert "sslreconciler.service" in scripts.split("preuninstall scriptlet")[1]
    assert "try-restart sslreconciler.service" in scripts or "mark-restart-system-units" in scripts
    assert "useradd -r -g sipx" in scripts
    configs = set(_rpm_query(rpm_file, "-c").split())
    assert configs == {"/etc/sslreconciler/sslreconciler.toml", "/etc/sslreconciler/desired-state.example.json",
                       "/etc/sslreconciler/store-password"}
    flags = _rpm_query(rpm_file, "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]")
    for line in flags.splitlines():
        if line.startswith("/etc/sslreconciler/") and line.split()[0] in configs:
            assert " cn " in f" {line} ", line  # %config(noreplace)
    assert "/etc/sslreconciler/store-password cn -rw-------" in flags


@pytest.mark.slow
def test_unit_verifies_clean_as_installed(rpm_root: Path) -> None:
    """systemd-analyze verify on the unit as the RPM installs it, with its command and man page there."""
    root = rpm_root
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/kill", root / "bin" / "kill")
    units = root / "usr" / "lib" / "systemd" / "system"
    for unit in Path("/usr/lib/systemd/system").iterdir():
        if not (units / unit.name).exists():
            if unit.is_symlink():
                (units / unit.name).symlink_to(os.readlink(unit))
            elif unit.is_file():
                shutil.copy(unit, units / unit.name)
    env = {**os.environ, "MANPATH": str(root / "usr" / "share" / "man")}
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "sslreconciler.service"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr
    unit = (units / "sslreconciler.service").read_text()
    for line in ["Type=notify", "ExecStart=/usr/bin/sslreconciler run", "ExecReload=/bin/kill -HUP $MAINPID",
                 "Restart=on-failure", "RuntimeDirectory=sslreconciler", "StateDirectory=sslreconciler",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=-/etc/sipxpbx/ssl",
                 "RestrictAddressFamilies=AF_UNIX", "SystemCallFilter=@system-service", "UMask=0077",
                 "LoadCredential=store-password:/etc/sslreconciler/store-password", "PrivateDevices=yes",
                 "ReadWritePaths=-/var/lib/prometheus/node-exporter -/var/lib/node_exporter/textfile_collector"]:
        assert line in unit.splitlines(), line
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(units / "sslreconciler.service")],
                              capture_output=True, text=True, timeout=120)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout + security.stderr)
    assert score and float(score.group(1)) <= 1.0, security.stdout[-2000:]
    assert f"**{score.group(1)} " in (REPO / "docs" / "operations.md").read_text()


@pytest.mark.slow
def test_packaged_command_runs(rpm_root: Path) -> None:
    script = rpm_root / "usr" / "bin" / "sslreconciler"
    assert script.read_text().startswith("#!/usr/bin/python3\n")
    site = next(rpm_root.glob("usr/lib/python3*/site-packages"))
    proc = subprocess.run([sys.executable, "-S", str(script), "--help"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path[1:]])})
    assert proc.returncode == 0 and "reconcile" in proc.stdout, proc.stderr
    assert str(site) in subprocess.run(
        [sys.executable, "-c", "import sslreconciler; print(sslreconciler.__file__)"], capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(site)}).stdout


def _all_options(parser, path=()) -> list[tuple[tuple[str, ...], str]]:
    import argparse

    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(((*path, name), ""))
                out += _all_options(sub, (*path, name))
        elif action.help != argparse.SUPPRESS:  # hidden: accepted for compatibility, meaningless there
            out += [(path, flag) for flag in action.option_strings]
    return out


def test_man_page_covers_every_command_and_option() -> None:
    page = (REPO / "docs" / "sslreconciler.1").read_text()
    assert page == manpage.render(), "docs/sslreconciler.1 is stale: run `make man`"
    plain = page.replace("\\-", "-")
    for path, flag in _all_options(build_parser()):
        if flag:
            assert flag in plain, (path, flag)
        else:
            assert f".SS sslreconciler {' '.join(path)}" in plain, path


def _shown_commands() -> list[tuple[str, str]]:
    out = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        in_block = False
        pending = ""
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                continue
            line = pending + line.split(" #", 1)[0].strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            for part in re.split(r";|&&|\|\|", line):
                part = part.strip()
                if part.startswith("sslreconciler "):
                    out.append((doc.name, part))
    return out


def test_every_command_the_docs_show_parses() -> None:
    shown = _shown_commands()
    assert len(shown) > 20
    parser = build_parser()
    for doc, command in shown:
        text = command.replace("$(hostname -f)", "h.example.com").replace("[", "").replace("]", "")  # optional parts in
        words = [re.sub(r"\$\w+", "/tmp/x", w) for w in shlex.split(text)[1:]]
        try:
            parser.parse_args(words)
        except SystemExit as exc:
            assert exc.code == 0, f"{doc}: {command}"


def test_help_of_every_subcommand() -> None:
    for path, flag in _all_options(build_parser()):
        if not flag and len(path) <= 2:
            result = run_cli(*path, "--help")
            assert result.rc == 0 and "usage: sslreconciler" in result.out, path


@pytest.mark.slow
def test_acme_unit_and_timer_verify_clean_as_installed(rpm_file: Path, rpm_root: Path) -> None:
    """The ACME oneshot unit and its timer: verified as installed, hardened, enabled by the RPM's preset."""
    root = rpm_root
    (root / "bin").mkdir(exist_ok=True)
    units = root / "usr" / "lib" / "systemd" / "system"
    for unit in Path("/usr/lib/systemd/system").iterdir():
        if not (units / unit.name).exists() and not (units / unit.name).is_symlink():
            if unit.is_symlink():
                (units / unit.name).symlink_to(os.readlink(unit))
            elif unit.is_file():
                shutil.copy(unit, units / unit.name)
    env = {**os.environ, "MANPATH": str(root / "usr" / "share" / "man")}
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "sslreconciler-acme.service",
                           "sslreconciler-acme.timer"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr
    service = (units / "sslreconciler-acme.service").read_text().splitlines()
    for line in ["Type=oneshot", "ExecStart=/usr/bin/sslreconciler acme renew", "User=sipx",
                 "StateDirectory=sslreconciler", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=-/etc/sipxpbx/ssl", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "SystemCallFilter=@system-service", "UMask=0077"]:
        assert line in service, line
    assert "PrivateNetwork=yes" not in service  # unlike the daemon, it must reach the ACME server
    # acme renew reconciles too: it must read every credential the daemon reads (the store password)
    daemon_unit = (units / "sslreconciler.service").read_text().splitlines()
    credentials = [line for line in daemon_unit if line.startswith("LoadCredential=")]
    assert credentials and all(line in service for line in credentials), credentials
    timer = (units / "sslreconciler-acme.timer").read_text().splitlines()
    for line in ["OnCalendar=*-*-* 00,12:00:00", "RandomizedDelaySec=12h", "Persistent=true", "WantedBy=timers.target"]:
        assert line in timer, line
    security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                               str(units / "sslreconciler-acme.service")], capture_output=True, text=True, timeout=120)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout + security.stderr)
    assert score and float(score.group(1)) <= 2.0, security.stdout[-2000:]
    scripts = _rpm_query(rpm_file, "--scripts")
    assert "sslreconciler-acme.timer" in scripts.split("preuninstall scriptlet")[0]  # preset on install
    assert "sslreconciler-acme.timer" in scripts.split("preuninstall scriptlet")[1]  # disabled on removal
