#!/usr/bin/env bash
# Runs the whole test suite: unit tests, property tests, integration tests against
# the in-process test receiver and against a real rsyslog, the examples' build and
# the documentation examples.
#
# The integration tests start their own rsyslogd (as a private instance on free
# loopback ports); this script installs rsyslog and its TLS module when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_rsyslog() {
    { command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ]; } || return 1
    local module
    for module in /usr/lib/*/rsyslog/lmnsd_gtls.so /usr/lib/rsyslog/lmnsd_gtls.so; do
        [ -e "$module" ] && return 0
    done
    return 1
}

if ! have_rsyslog; then
    echo "==> installing rsyslog and rsyslog-gnutls (needed by the integration tests)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
        rsyslog rsyslog-gnutls
fi
have_rsyslog || { echo "rsyslog with its gtls module is still missing" >&2; exit 1; }

echo "==> cargo test"
cargo test --locked --all-features "$@"
# The test kit's own checks (its receivers and oracles), unless the caller
# chose the tests to run.
if [ "$#" -eq 0 ]; then
    cargo test --locked -p djehouty-testkit
fi
