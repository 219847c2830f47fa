#!/bin/sh
# Waits for the development Graylog (docker-compose.yml at the repository root)
# to answer on its REST API, then creates the inputs djehouty sends to:
#
#   djehouty GELF TCP        12201  GELF, NUL-delimited frames, plain TCP
#   djehouty GELF TCP TLS    12202  GELF, NUL-delimited frames, TLS
#   djehouty LTSV raw TCP     5555  newline-delimited lines (Raw/Plaintext TCP)
#
# An input whose title already exists is left as it is (so running this again
# is harmless); each input is then started if it is not running.
#
# Environment (all optional):
#   GRAYLOG_API        REST API base URL        (default: http://graylog:9000/api)
#   GRAYLOG_USER       REST API user            (default: admin; local dev only)
#   GRAYLOG_PASSWORD   REST API password        (default: admin; local dev only)
#   WAIT_SECONDS       how long to wait for Graylog (default: 600)
#   TLS_CERT_FILE      server certificate, as a path inside the Graylog container
#   TLS_KEY_FILE       PKCS#8 PEM server key, as a path inside the Graylog container
#   LOCAL_TLS_DIR      where this container sees those two files, to check that
#                      they exist before Graylog is pointed at them (default: /tls)
#
# It needs a POSIX shell, curl and jq; inside the alpine container they are
# installed on first use.
set -eu

GRAYLOG_API=${GRAYLOG_API:-http://graylog:9000/api}
GRAYLOG_USER=${GRAYLOG_USER:-admin}
GRAYLOG_PASSWORD=${GRAYLOG_PASSWORD:-admin}
WAIT_SECONDS=${WAIT_SECONDS:-600}
TLS_CERT_FILE=${TLS_CERT_FILE:-/usr/share/graylog/tls/server-cert.pem}
TLS_KEY_FILE=${TLS_KEY_FILE:-/usr/share/graylog/tls/server-key.pem}
LOCAL_TLS_DIR=${LOCAL_TLS_DIR:-/tls}

# Graylog rejects state-changing requests without this header (CSRF protection).
REQUESTED_BY=djehouty

GELF_TCP_INPUT=org.graylog2.inputs.gelf.tcp.GELFTCPInput
RAW_TCP_INPUT=org.graylog2.inputs.raw.tcp.RawTCPInput

log() {
    printf '[graylog-setup] %s\n' "$*"
}

die() {
    printf '[graylog-setup] error: %s\n' "$*" >&2
    exit 1
}

missing=
for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    if command -v apk >/dev/null 2>&1; then
        log "installing$missing"
        # shellcheck disable=SC2086 # one word per tool
        apk add --no-cache --quiet $missing || die "could not install$missing"
    else
        die "required tools missing:$missing"
    fi
fi

RESPONSE=$(mktemp)
trap 'rm -f "$RESPONSE"' EXIT INT TERM

# api METHOD PATH [JSON_BODY]: prints the HTTP status (000 when Graylog could
# not be reached); the response body is left in "$RESPONSE".
api() {
    : >"$RESPONSE"
    if [ $# -ge 3 ]; then
        status=$(curl --silent --max-time 30 \
            --request "$1" --user "$GRAYLOG_USER:$GRAYLOG_PASSWORD" \
            --header 'Accept: application/json' \
            --header 'Content-Type: application/json' \
            --header "X-Requested-By: $REQUESTED_BY" \
            --data "$3" \
            --output "$RESPONSE" --write-out '%{http_code}' \
            "$GRAYLOG_API$2" 2>/dev/null) || true
    else
        status=$(curl --silent --max-time 30 \
            --request "$1" --user "$GRAYLOG_USER:$GRAYLOG_PASSWORD" \
            --header 'Accept: application/json' \
            --header "X-Requested-By: $REQUESTED_BY" \
            --output "$RESPONSE" --write-out '%{http_code}' \
            "$GRAYLOG_API$2" 2>/dev/null) || true
    fi
    printf '%s' "${status:-000}"
}

response_message() {
    # Graylog's error bodies carry a "message"; fall back to the raw body.
    jq -r '.message // empty' "$RESPONSE" 2>/dev/null || cat "$RESPONSE"
}

wait_for_graylog() {
    log "waiting for Graylog at $GRAYLOG_API (first start takes a minute or two)"
    start=$(date +%s)
    last_note=$start
    while :; do
        # lbstatus answers ALIVE (200) without credentials once the node
        # processes messages; /system then proves the admin login works.
        lb=$(curl --silent --max-time 5 --output /dev/null --write-out '%{http_code}' \
            "$GRAYLOG_API/system/lbstatus" 2>/dev/null) || true
        if [ "$lb" = 200 ]; then
            code=$(api GET /system)
            if [ "$code" = 200 ]; then
                log "Graylog $(jq -r '.version // "?"' "$RESPONSE") is up"
                return 0
            elif [ "$code" = 401 ]; then
                die "Graylog refused $GRAYLOG_USER's credentials (was the admin password changed?)"
            fi
        fi
        now=$(date +%s)
        if [ $((now - start)) -ge "$WAIT_SECONDS" ]; then
            die "Graylog did not come up within ${WAIT_SECONDS}s; see: docker compose logs graylog"
        fi
        if [ $((now - last_note)) -ge 30 ]; then
            log "still waiting ($((now - start))s)"
            last_note=$now
        fi
        sleep 5
    done
}

# Prints the id of the input with this exact title, or nothing.
find_input_id() {
    code=$(api GET /system/inputs)
    [ "$code" = 200 ] || die "listing inputs failed (HTTP $code): $(response_message)"
    jq -r --arg title "$1" \
        '[.inputs[]? | select(.title == $title) | .id] | first // empty' "$RESPONSE"
}

# Prints the state of an input on this node (RUNNING, FAILED, ...), or nothing
# when the node does not run it (stopped, or still in setup mode).
input_state() {
    code=$(api GET /system/inputstates)
    [ "$code" = 200 ] || return 0
    jq -r --arg id "$1" \
        '[.states[]? | select(.id == $id) | .state] | first // empty' "$RESPONSE"
}

input_detail() {
    api GET /system/inputstates >/dev/null
    jq -r --arg id "$1" \
        '[.states[]? | select(.id == $id) | .detailed_message // empty] | first // empty' \
        "$RESPONSE" 2>/dev/null || true
}

# ensure_running ID TITLE: waits for the input to run, asking Graylog to start
# it when it stays idle (new inputs may be created stopped or in "setup mode",
# depending on the Graylog version).
ensure_running() {
    id=$1
    title=$2
    tries=0
    start_requested=0
    while [ "$tries" -lt 30 ]; do
        state=$(input_state "$id")
        case $state in
            RUNNING)
                log "  running: $title"
                return 0
                ;;
            FAILED | FAILING | INVALID_CONFIGURATION)
                log "  $title is $state: $(input_detail "$id")"
                return 1
                ;;
            STARTING | INITIALIZED | CREATED) ;;
            *)
                # Not running on this node yet: give Graylog a few seconds to
                # launch it by itself, then ask.
                if [ "$start_requested" = 0 ] && [ "$tries" -ge 3 ]; then
                    code=$(api PUT "/system/inputstates/$id")
                    case $code in
                        2??) log "  asked Graylog to start $title" ;;
                        *) log "  starting $title failed (HTTP $code): $(response_message)" ;;
                    esac
                    start_requested=1
                fi
                ;;
        esac
        tries=$((tries + 1))
        sleep 2
    done
    log "  $title is not running (state: ${state:-not started}); see System > Inputs in the web UI"
    return 1
}

# ensure_input TITLE TYPE CONFIGURATION_JSON
ensure_input() {
    title=$1
    type=$2
    configuration=$3
    # (a failed listing must stop everything: creating blindly could duplicate)
    id=$(find_input_id "$title") || die "could not look up input \"$title\""
    if [ -n "$id" ]; then
        log "input exists, left unchanged: $title ($id)"
    else
        body=$(jq -n --arg title "$title" --arg type "$type" --argjson configuration "$configuration" \
            '{title: $title, type: $type, global: true, configuration: $configuration}')
        code=$(api POST /system/inputs "$body")
        case $code in
            200 | 201) ;;
            *) die "creating input \"$title\" failed (HTTP $code): $(response_message)" ;;
        esac
        id=$(jq -r '.id // empty' "$RESPONSE")
        [ -n "$id" ] || die "Graylog created \"$title\" but returned no id"
        log "input created: $title ($id)"
    fi
    ensure_running "$id" "$title"
}

# Settings shared by the three TCP inputs. Keys are those of Graylog's TCP
# transport (bind_address, port, recv_buffer_size, tcp_keepalive,
# use_null_delimiter, max_message_size, tls_*) and GELF codec
# (decompress_size_limit); each one is given explicitly because defaults shown
# in the web UI are not applied to REST requests.
tcp_config() {
    # tcp_config PORT USE_NULL_DELIMITER
    jq -n --argjson port "$1" --argjson nul "$2" '{
        bind_address: "0.0.0.0",
        port: $port,
        recv_buffer_size: 1048576,
        tcp_keepalive: false,
        use_null_delimiter: $nul,
        max_message_size: 2097152,
        tls_enable: false,
        tls_client_auth: "disabled"
    }'
}

for f in "$(basename "$TLS_CERT_FILE")" "$(basename "$TLS_KEY_FILE")"; do
    # Without its files Graylog would quietly serve a self-signed certificate.
    [ -s "$LOCAL_TLS_DIR/$f" ] || die "$LOCAL_TLS_DIR/$f is missing: did the certs service run?"
done

wait_for_graylog

gelf_plain=$(tcp_config 12201 true | jq '. + {decompress_size_limit: 8388608}')
gelf_tls=$(printf '%s' "$gelf_plain" | jq --arg cert "$TLS_CERT_FILE" --arg key "$TLS_KEY_FILE" \
    '. + {port: 12202, tls_enable: true, tls_cert_file: $cert, tls_key_file: $key}')
ltsv_raw=$(tcp_config 5555 false)

failures=0
ensure_input "djehouty GELF TCP" "$GELF_TCP_INPUT" "$gelf_plain" || failures=$((failures + 1))
ensure_input "djehouty GELF TCP TLS" "$GELF_TCP_INPUT" "$gelf_tls" || failures=$((failures + 1))
ensure_input "djehouty LTSV raw TCP" "$RAW_TCP_INPUT" "$ltsv_raw" || failures=$((failures + 1))

cat <<'EOF'

  Graylog is ready for djehouty (local development only).

  Web UI        http://127.0.0.1:9000   user admin, password admin (throwaway)

  GELF, plain   OTEL_EXPORTER_GELF_ENDPOINT=tcp://127.0.0.1:12201
  GELF, TLS     OTEL_EXPORTER_GELF_ENDPOINT=tls://localhost:12202
                OTEL_EXPORTER_GELF_CERTIFICATE=docker/certs/ca.pem
                (or .with_ca_file("docker/certs/ca.pem") on the builder)
  LTSV          OTEL_EXPORTER_LTSV_ENDPOINT=tcp://127.0.0.1:5555

  Example, from the repository root:
    OTEL_EXPORTER_GELF_ENDPOINT=tls://localhost:12202 \
    OTEL_EXPORTER_GELF_CERTIFICATE=docker/certs/ca.pem \
    cargo run --example tracing

  Then open Search in the web UI. Tear down with: docker compose down -v

EOF

if [ "$failures" -gt 0 ]; then
    die "$failures input(s) are not running"
fi
