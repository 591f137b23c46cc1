"""The install role's systemd unit for a wheel install (issue 25, problem 6).

The role's template is the unit the RPM ships: rendered with the RPM's paths it is packaging/systemd's file
line for line (bar its header), and rendered by the role with a venv's paths it passes ``systemd-analyze
verify`` (no systemd as PID 1 here: the unit is checked, not started).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansiblekit import BIN, ansible_env, link_collection

from conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the role installs as root"),
    pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"),
]

RPM_VARS = {
    "sslreconciler_bin": "/usr/bin/sslreconciler",
    "sslreconciler_config": "/etc/sslreconciler/sslreconciler.toml",
    "sslreconciler_service_user": "sipx",
    "sslreconciler_service_group": "sipx",
    "sslreconciler_socket": "/run/sslreconciler/health.sock",
    "sslreconciler_state_dir": "/var/lib/sslreconciler",
    "sslreconciler_unit_credential": "/etc/sslreconciler/store-password",
    "sslreconciler_ssl_dir": "/etc/sipxpbx/ssl",
}


def test_a_wheel_install_under_systemd_gets_the_rpms_unit_with_its_own_paths(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    link_collection(tmp_path)
    venv_units, rpm_units = tmp_path / "units", tmp_path / "rpm-units"
    venv_units.mkdir()
    rpm_units.mkdir()
    node = {  # a wheel node: the venv's command, its own settings file and ssl dir
        # main.yml includes these tasks for wheel + systemd; "background" here only keeps the restart handler
        # from calling systemctl on a machine without systemd as PID 1.
        "sslreconciler_install_method": "wheel",
        "sslreconciler_service_manager": "background",
        "sslreconciler_bin": str(BIN / "sslreconciler"),
        "sslreconciler_config": str(tmp_path / "etc" / "s.toml"),
        "sslreconciler_ssl_dir": str(tmp_path / "ssl"),
        "sslreconciler_unit_dir": str(venv_units),
        "sslreconciler_service_user": "root",
        "sslreconciler_service_group": "root",  # no user made on this machine
    }
    play = [
        {
            "name": "The unit",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "tasks": [
                {
                    "name": "The role's unit tasks",
                    "ansible.builtin.include_role": {
                        "name": "sipxpbx.sslreconciler.install",
                        "tasks_from": "systemd_unit",
                    },
                    "vars": node,
                },
                {
                    "name": "The template with the RPM's paths",
                    "ansible.builtin.template": {
                        "src": str(REPO / "ansible" / "roles" / "install" / "templates" / "sslreconciler.service.j2"),
                        "dest": str(rpm_units / "sslreconciler.service"),
                        "mode": "0644",
                    },
                    "vars": RPM_VARS,
                },
            ],
        }
    ]
    playbook = tmp_path / "unit.json"
    playbook.write_text(json.dumps(play))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    shipped = (REPO / "packaging" / "systemd" / "sslreconciler.service").read_text().splitlines()
    rendered = (rpm_units / "sslreconciler.service").read_text().splitlines()
    assert rendered[3:] == shipped, "the role's unit and the RPM's have drifted apart"

    unit = venv_units / "sslreconciler.service"
    text = unit.read_text()
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    assert f"ExecStart={BIN / 'sslreconciler'} run --config {tmp_path / 'etc' / 's.toml'}\n" in text
    assert f"ReadWritePaths=-{tmp_path / 'ssl'}\n" in text and "LoadCredential" not in text.replace("# (none", "")
    assert "User=root\nGroup=root\n" in text and "StateDirectory=sslreconciler\n" in text
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stdout + verify.stderr

    # The check can fail: a unit whose command is not there is refused.
    broken = tmp_path / "broken" / "sslreconciler.service"
    broken.parent.mkdir()
    broken.write_text(text.replace(str(BIN / "sslreconciler"), str(tmp_path / "no-such-venv" / "sslreconciler")))
    refused = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0 and "not executable" in refused.stderr
