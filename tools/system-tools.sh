#!/usr/bin/env bash
# Make sure the system tools a make target needs are here: install the missing ones with apt-get
# (as root, or through passwordless sudo), or stop at once with one message naming every missing
# tool and the Debian package that brings it. The one list of what `make run` and `make test` need.
#
#   tools/system-tools.sh run    what `make run` needs
#   tools/system-tools.sh test   what `make test` needs (a superset)
set -euo pipefail

profile=${1:-test}
python=${PYTHON:-python3}

# tool|package|why  (a "tool" starting with "python:" is a Python module the interpreter must have,
# one starting with "file:" a file that must exist; other tools are looked for in PATH and the sbin dirs)
run_tools=(
  "python:venv|python3-venv|make's .venv"
  "python:ensurepip|python3-venv|pip inside .venv"
)
test_tools=(
  "keytool|openjdk-17-jdk-headless|checking every JKS store"
  "javac|openjdk-17-jdk-headless|the Java TLS and PKIX test programs"
  "java|openjdk-17-jdk-headless|the Java TLS and PKIX test programs"
  "openssl|openssl|independent checks of keys, PKCS#12 files and chains"
  "rpmbuild|rpm|make rpm and the packaging tests"
  "rpm|rpm|querying the built RPM"
  "cpio|cpio|unpacking the built RPM"
  "systemd-analyze|systemd|verifying the systemd unit (not run as PID 1)"
  "curl|curl|the README's health check over the Unix socket"
  "git|git|make rpm packs the tracked files"
  "pebble|pebble|the ACME tests' test CA (Let's Encrypt's pebble)"
  "pebble-challtestsrv|pebble|DNS answers for pebble's HTTP-01 validation in the ACME tests"
  "useradd|passwd|the privilege-boundary tests' unprivileged user"
  "setpriv|util-linux|acting as that user, and root without capabilities"
  "apache2|apache2|the consumer tests' real Apache (mod_ssl)"
  "nginx|nginx-light|the consumer tests' real nginx (ssl)"
  "kamailio|kamailio|the consumer tests' real Kamailio"
  "kamcmd|kamailio|reloading Kamailio's TLS in the consumer tests"
  "file:/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so|kamailio-tls-modules|Kamailio's TLS module for the consumer tests"
  "file:/usr/share/java/tomcat10-catalina.jar|libtomcat10-java|the consumer tests' real (embedded) Tomcat"
  "file:/usr/share/java/jetty9-server.jar|libjetty9-java|the consumer tests' real Jetty"
  "sshd|openssh-server|the fleet tests over SSH (a test's own sshd on 127.0.0.1)"
  "sudo|sudo|become over SSH in the fleet tests (an unprivileged login user becoming root)"
  "promtool|prometheus|checking and unit-testing the alert rules in monitoring/"
  "prometheus|prometheus|the end-to-end scrape of the textfile metrics (a server on 127.0.0.1)"
  "prometheus-node-exporter|prometheus-node-exporter|the textfile collector the metrics are written for"
)

case "$profile" in
  run) wanted=("${run_tools[@]}") ;;
  test) wanted=("${run_tools[@]}" "${test_tools[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

have() {
  case "$1" in
    python:*) "$python" -c "import ${1#python:}" >/dev/null 2>&1 ;;
    file:*) [ -e "${1#file:}" ] ;;
    *) PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=() packages=()
for entry in "${wanted[@]}"; do
  IFS='|' read -r tool package why <<<"$entry"
  if ! have "$tool"; then
    missing+=("  ${tool#*:} (Debian package $package): $why")
    [[ " ${packages[*]-} " == *" $package "* ]] || packages+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  sudo=(none)
fi
if [ "${sudo[0]-}" = none ] || ! command -v apt-get >/dev/null 2>&1; then
  {
    echo "make: missing system tools, and they cannot be installed here (needs root or sudo, and apt-get):"
    printf '%s\n' "${missing[@]}"
    echo "install them with: apt-get install ${packages[*]}"
  } >&2
  exit 1
fi

echo "installing ${packages[*]} (for: $(printf '%s;' "${missing[@]}" | sed 's/  */ /g'))"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

still=()
for entry in "${wanted[@]}"; do
  IFS='|' read -r tool package why <<<"$entry"
  have "$tool" || still+=("  ${tool#*:} (Debian package $package)")
done
if [ ${#still[@]} -gt 0 ]; then
  { echo "make: still missing after apt-get install:"; printf '%s\n' "${still[@]}"; } >&2
  exit 1
fi
