"""Real Java TLS consumers from Debian for the tests: embedded Tomcat 10.1 (libtomcat10-java) and Jetty 9.4
(libjetty9-java), each a small program in tests/java/consumers/ compiled against the jars in /usr/share/java,
run as our child on 127.0.0.1 (consumerkit.Server: start waits until it serves TLS, stop ends its process
group), serving HTTPS from a keystore and requiring a client certificate its truststore accepts.

Tomcat reloads its SSL host configs (the connector's ``reloadSslHostConfigs()``, what the Manager's
``sslReload`` does) for every line written to its control FIFO; ``reload_argv`` is that write as a hook's
command. Jetty's ``KeyStoreScanner`` (scan interval 1 s) reloads a replaced keystore by itself.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from consumerkit import Server
from tlschecks import free_port, wait_for

from conftest import PASSWORD, java_bin

JARS = Path("/usr/share/java")
SOURCES = Path(__file__).resolve().parent / "java" / "consumers"
TOMCAT_JARS = ["tomcat10-catalina", "tomcat10-coyote", "tomcat10-util", "tomcat10-util-scan", "tomcat10-juli",
               "tomcat10-api", "tomcat10-servlet-api", "tomcat10-annotations-api", "tomcat10-jaspic-api",
               "tomcat10-jni"]
JETTY_JARS = ["jetty9-server", "jetty9-util", "jetty9-http", "jetty9-io", "servlet-api"]
RELOAD_TIMEOUT = 30.0


def classpath(jars: list[str], classes: Path | None = None) -> str:
    return ":".join([*(str(JARS / f"{j}.jar") for j in jars), *([str(classes)] if classes else [])])


def compile_consumers(out: Path) -> Path:
    """TomcatTls and JettyTls compiled into ``out`` (each against its own server's jars)."""
    for source, jars in (("TomcatTls.java", TOMCAT_JARS), ("JettyTls.java", JETTY_JARS)):
        subprocess.run(["javac", "--release", "11", "-nowarn", "-d", str(out), "-cp", classpath(jars),
                        str(SOURCES / source)], check=True, timeout=300, capture_output=True)
    return out


def tomcat_version() -> str:
    """``Apache Tomcat/10.1.60 (Debian)``: what org.apache.catalina.util.ServerInfo says."""
    done = subprocess.run([java_bin("system"), "-cp", classpath(TOMCAT_JARS), "org.apache.catalina.util.ServerInfo"],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.splitlines()[0].split(":", 1)[1].strip()


class JavaServer(Server):
    """A Java TLS server on a keystore (``storetype`` JKS or PKCS12) and a JKS truststore."""

    start_timeout = 90.0

    def __init__(self, workdir: Path, classes: Path, keystore: Path, truststore: Path, *,
                 storetype: str = "JKS", password: str = PASSWORD) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.classes, self.keystore, self.truststore = classes, keystore, truststore
        self.storetype, self.password = storetype, password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "stdout.log"

    def write_config(self) -> None:  # the program takes everything on its command line
        pass

    def version(self) -> str:
        """What the server said when it started (``STARTED <version>``)."""
        for line in self.logs().splitlines():
            if line.startswith("STARTED "):
                return line.split(" ", 1)[1]
        return ""


class Tomcat(JavaServer):
    kind = "tomcat"

    @property
    def control(self) -> Path:
        return self.dir / "control.fifo"

    def start(self) -> Server:
        if not self.control.exists():
            os.mkfifo(self.control, 0o600)
        return super().start()

    def argv(self) -> list[str]:
        return [java_bin("system"), "-Xmx128m", "-cp", classpath(TOMCAT_JARS, self.classes), "TomcatTls",
                str(self.dir / "base"), str(self.port), str(self.keystore), self.storetype, str(self.truststore),
                self.password, str(self.control)]

    def reload_argv(self) -> list[str]:
        """A line into the control FIFO: Tomcat's reloadSslHostConfigs(), as a hook's command."""
        return ["/bin/sh", "-c", 'echo reload > "$0"', str(self.control)]

    def reloads(self) -> list[str]:
        """Each reload's outcome so far, in order: ``RELOADED n`` or ``RELOAD-FAILED n reason``."""
        return [line for line in self.logs().splitlines() if line.startswith(("RELOADED ", "RELOAD-FAILED "))]

    def wait_reloaded(self, count: int) -> str:
        """The outcome of the ``count``-th reload, once Tomcat has done it."""
        wait_for(lambda: len(self.reloads()) >= count, RELOAD_TIMEOUT, f"tomcat's reload #{count}")
        return self.reloads()[count - 1]


class Jetty(JavaServer):
    kind = "jetty"

    def argv(self) -> list[str]:
        return [java_bin("system"), "-Xmx128m", "-cp", classpath(JETTY_JARS, self.classes), "JettyTls",
                str(self.port), str(self.keystore), self.storetype, str(self.truststore), self.password]
