"""Real TLS consumers from Debian for the tests: Apache 2.4 (mod_ssl), nginx and Kamailio (tls module),
each started on 127.0.0.1 in the test's own directory (its own config, pid file, logs, runtime dir; no
system config read or touched), serving TLS from the key/certificate files it is given and requiring a
client certificate from a CA path (hash-linked dir) or a CA file. Each is stopped by ``stop()`` (the
context manager always calls it), and every wait has a deadline: no sleeps.

The checks with ``openssl s_client`` and ``curl`` are in tlschecks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tlschecks import curl_get, free_port, mutual_tls, serves_tls, wait_for

APACHE_MODULES = Path("/usr/lib/apache2/modules")
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
START_TIMEOUT = 20.0
RELOAD_WRAPPER = Path(__file__).resolve().parent.parent / "config" / "hooks" / "kamailio-tls-reload"


def tool(name: str) -> str:
    """A program's path: from PATH, or the sbin dir Debian puts servers in (not in a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") or name


def _as_root() -> bool:
    return os.geteuid() == 0


def let_children_in(path: Path) -> None:
    """Apache's children (``User nobody`` when the test runs as root) read ``SSLCACertificatePath`` lazily,
    at a client's handshake: give others the right to pass (x, not read) through ``path`` and its
    ancestors below the temp root (pytest makes them 0700), as Apache's user needs on a real node."""
    if not _as_root():
        return
    top = Path(tempfile.gettempdir()).resolve()
    for p in [path.resolve(), *path.resolve().parents]:
        if p == top or top not in p.parents:
            break
        os.chmod(p, os.stat(p).st_mode & 0o7777 | 0o001)


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (or it was reaped already)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
    except ChildProcessError:
        return True


class Server:
    """One real server process in ``workdir``, run in the foreground as our child (its own session, so
    ``stop`` can end the whole group)."""

    kind = "server"
    start_timeout = START_TIMEOUT  # a JVM's start takes longer on busy cores

    def __init__(
        self, workdir: Path, key: Path, cert: Path, *, ca_path: Path | None = None, ca_file: Path | None = None
    ) -> None:
        if (ca_path is None) == (ca_file is None):
            raise ValueError("give exactly one of ca_path and ca_file")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert, self.ca_path, self.ca_file = key, cert, ca_path, ca_file
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "stderr.log"

    # what each server says
    def write_config(self) -> None:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def reload_argv(self) -> list[str]:
        """The reload as a hook's ``command``."""
        raise NotImplementedError

    def start(self) -> Server:
        """Start it and wait until it listens; a port another process took between ``free_port`` and the
        server's bind (other tests run beside this one) is given up for another, twice at most."""
        for attempt in range(3):
            self.write_config()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    self.argv(), cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
                )
            try:
                wait_for(lambda: self._up(), self.start_timeout, f"{self.kind} listening on {self.port}")
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2 or "in use" not in self.logs():
                    raise
                self.port = free_port()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("not reached")

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited {self.proc.returncode} at start:\n{self.logs()}")
        return serves_tls(self.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.reload_argv(), capture_output=True, text=True, timeout=30)

    def stop(self) -> None:
        """TERM to the server's process group, KILL after a deadline; then KILL whatever of the group is
        left (workers), while the leader is still unreaped so the group id cannot belong to anyone else."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                wait_for(lambda: _exited(proc.pid), 10.0, f"{self.kind} stopping")
                break
            except TimeoutError:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def accepts(self, host: str, ca_file: Path, client_cert: Path, client_key: Path) -> bool:
        """Mutual TLS as a client sees it: a request over HTTPS answered 200 (nginx refuses an untrusted
        client certificate with a 400 page after the handshake, not in it)."""
        done = curl_get(self.port, host, ca_file, client_cert, client_key)
        return done.returncode == 0 and done.stdout == "200"

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("*.log")))

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Apache(Server):
    kind = "apache2"

    @property
    def conf(self) -> Path:
        return self.dir / "apache2.conf"

    def write_config(self) -> None:
        trust = f"SSLCACertificatePath {self.ca_path}" if self.ca_path else f"SSLCACertificateFile {self.ca_file}"
        user = "User nobody\nGroup nogroup\n" if _as_root() else ""
        mods = ["mpm_event", "authz_core", "status", "socache_shmcb", "ssl"]
        loads = "".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so\n" for m in mods)
        self.conf.write_text(
            f'ServerRoot "{self.dir}"\nDefaultRuntimeDir "{self.dir}"\nPidFile "{self.dir}/apache2.pid"\n'
            f"Mutex file:{self.dir} default\n{loads}{user}ServerName 127.0.0.1\n"
            f'ErrorLog "{self.dir}/error.log"\nLogLevel info\nListen 127.0.0.1:{self.port}\n'
            # a 200 that reads no file (the children, as nobody, cannot enter the test's temp dir)
            # one child process: one OpenSSL store, so what it has loaded is what every client meets
            "StartServers 1\nServerLimit 1\nThreadsPerChild 8\nMinSpareThreads 1\nMaxSpareThreads 8\n"
            'MaxRequestWorkers 8\nSSLSessionCache none\n<Location "/">\n  SetHandler server-status\n</Location>\n'
            f"<VirtualHost 127.0.0.1:{self.port}>\n  SSLEngine on\n"
            f'  SSLCertificateFile "{self.cert}"\n  SSLCertificateKeyFile "{self.key}"\n'
            f"  {trust}\n  SSLVerifyClient require\n  SSLVerifyDepth 5\n</VirtualHost>\n"
        )

    def argv(self) -> list[str]:
        return [tool("apache2"), "-f", str(self.conf), "-DFOREGROUND"]

    def reload_argv(self) -> list[str]:
        return [tool("apachectl"), "-f", str(self.conf), "-k", "graceful"]


class Nginx(Server):
    kind = "nginx"

    @property
    def conf(self) -> Path:
        return self.dir / "nginx.conf"

    def write_config(self) -> None:
        trust = self.ca_file
        if trust is None:
            raise ValueError("nginx takes a CA file (ssl_client_certificate), not a CA path")
        user = "user nobody nogroup;\n" if _as_root() else ""
        (self.dir / "tmp").mkdir(exist_ok=True)
        self.conf.write_text(
            f"daemon off;\nmaster_process on;\nworker_processes 1;\n{user}pid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/error.log info;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {self.dir}/tmp/body;\n"
            f"  proxy_temp_path {self.dir}/tmp/proxy;\n  fastcgi_temp_path {self.dir}/tmp/fastcgi;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port} ssl;\n"
            f"    ssl_certificate {self.cert};\n    ssl_certificate_key {self.key};\n"
            f"    ssl_client_certificate {trust};\n    ssl_verify_client on;\n    ssl_verify_depth 5;\n"
            f'    location / {{ return 200 "ok\\n"; }}\n  }}\n}}\n'
        )

    def _base(self) -> list[str]:
        return [tool("nginx"), "-p", str(self.dir), "-c", str(self.conf), "-e", str(self.dir / "error.log")]

    def argv(self) -> list[str]:
        return self._base()

    def reload_argv(self) -> list[str]:
        return [*self._base(), "-s", "reload"]


class Kamailio(Server):
    kind = "kamailio"

    @property
    def conf(self) -> Path:
        return self.dir / "kamailio.cfg"

    _short: Path | None = None  # the control socket's dir when the work dir's path is too long for one

    @property
    def ctl(self) -> str:
        """Kamailio's control socket: in the work dir, unless that path is too long for a Unix socket
        (108 bytes with its NUL), then in a private dir made at start and removed by ``stop``."""
        return f"unix:{(self._short or self.dir) / 'kamailio_ctl'}"

    def start(self) -> Server:
        if len(bytes(self.dir / "kamailio_ctl")) > 100 and (self._short is None or not self._short.exists()):
            self._short = Path(tempfile.mkdtemp(prefix="kam"))
        return super().start()

    def _up(self) -> bool:  # and kamcmd gets an answer on its control socket (which appears later)
        if not super()._up():
            return False
        done = subprocess.run([tool("kamcmd"), "-s", self.ctl, "core.version"], capture_output=True, timeout=10)
        return done.returncode == 0

    def stop(self) -> None:
        super().stop()
        if self._short is not None:  # the name stays: a reload after stop finds no socket there
            shutil.rmtree(self._short, ignore_errors=True)

    def write_config(self) -> None:
        trust = f"ca_path = {self.ca_path}" if self.ca_path else f"ca_list = {self.ca_file}"
        (self.dir / "tls.cfg").write_text(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n"
            f"private_key = {self.key}\ncertificate = {self.cert}\n{trust}\n\n"
            "[client:default]\nverify_certificate = no\nrequire_certificate = no\n"
        )
        self.conf.write_text(
            "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=1\ntcp_children=1\nauto_aliases=no\n"
            f'enable_tls=yes\nlisten=tls:127.0.0.1:{self.port}\nmpath="{KAMAILIO_MODULES}/"\n'
            'loadmodule "tls.so"\nloadmodule "ctl.so"\n'
            f'modparam("tls", "config", "{self.dir}/tls.cfg")\n'
            f'modparam("ctl", "binrpc", "{self.ctl}")\n'
            "request_route {\n  drop;\n}\n"
        )

    def argv(self) -> list[str]:
        return [
            tool("kamailio"),
            "-f",
            str(self.conf),
            "-P",
            str(self.dir / "kamailio.pid"),
            "-Y",
            str(self.dir),
            "-w",
            str(self.dir),
            "-DD",
            "-E",
            "-m",
            "32",
            "-M",
            "4",
        ]

    def reload_argv(self) -> list[str]:
        """The shipped wrapper, which fails when Kamailio refused the reload (``kamcmd tls.reload`` alone
        exits 0 either way)."""
        return [str(RELOAD_WRAPPER), "-s", self.ctl]

    def accepts(self, host: str, ca_file: Path, client_cert: Path, client_key: Path) -> bool:
        """Mutual TLS at the handshake (SIP over TLS has no request to make here)."""
        return mutual_tls(self.port, ca_file, client_cert, client_key)

    def kamcmd_reload(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("kamcmd"), "-s", self.ctl, "tls.reload"], capture_output=True, text=True, timeout=30
        )
