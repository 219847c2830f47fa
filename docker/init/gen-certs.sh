#!/bin/sh
# Generates a throwaway local certificate authority and a TLS server certificate
# for the GELF TLS input of the development Graylog (see docker-compose.yml at
# the repository root and docker/README.md).
#
# Nothing made here is secret or meant to last. The CA's private key is deleted
# as soon as it has signed the server certificate, so that CA can sign nothing
# else. A fresh CA is made whenever the stored one is missing, invalid, about to
# expire or issued for other names.
#
# Environment (all optional):
#   TLS_DIR            where Graylog reads ca.pem, server-cert.pem, server-key.pem
#                      (default: /tls, the `graylog_tls` volume of the compose file)
#   PUBLIC_DIR         where copies of ca.pem and server-cert.pem are put for the
#                      user, e.g. docker/certs (default: none). No key goes there.
#   KEY_OWNER          uid:gid given the server key (Graylog's image runs as 1100:1100)
#   PUBLIC_OWNER       uid:gid given the public copies; when run as root it defaults
#                      to the owner of PUBLIC_DIR's parent folder
#   CERT_DNS_NAMES     subjectAltName DNS entries  (default: "localhost graylog")
#   CERT_IP_ADDRESSES  subjectAltName IP entries   (default: "127.0.0.1 ::1")
#   CA_DAYS            validity of the CA          (default: 3650)
#   SERVER_DAYS        validity of the server cert (default: 825)
#   FORCE_REGENERATE   set to 1 to always make a new CA and certificate
#
# It needs only a POSIX shell and the openssl command line tool (OpenSSL 1.1.1
# or later); inside the alpine container openssl is installed on first use.
set -eu

TLS_DIR=${TLS_DIR:-/tls}
PUBLIC_DIR=${PUBLIC_DIR:-}
KEY_OWNER=${KEY_OWNER:-}
PUBLIC_OWNER=${PUBLIC_OWNER:-}
CERT_DNS_NAMES=${CERT_DNS_NAMES:-localhost graylog}
CERT_IP_ADDRESSES=${CERT_IP_ADDRESSES:-127.0.0.1 ::1}
CA_DAYS=${CA_DAYS:-3650}
SERVER_DAYS=${SERVER_DAYS:-825}
FORCE_REGENERATE=${FORCE_REGENERATE:-0}

# Regenerate when fewer than this many seconds of validity are left (30 days).
RENEW_BEFORE_SECONDS=2592000

log() {
    printf '[certs] %s\n' "$*"
}

die() {
    printf '[certs] error: %s\n' "$*" >&2
    exit 1
}

if ! command -v openssl >/dev/null 2>&1; then
    if command -v apk >/dev/null 2>&1; then
        log "installing openssl"
        apk add --no-cache --quiet openssl || die "could not install openssl"
    else
        die "the openssl command line tool is required"
    fi
fi

# One line describing what the certificate is for; stored beside it so that a
# change of names triggers a new certificate.
names_stamp="dns=${CERT_DNS_NAMES} ip=${CERT_IP_ADDRESSES}"

random_serial() {
    # 128 random bits, read as a positive hexadecimal number.
    printf '0x%s' "$(openssl rand -hex 16)"
}

key_matches_cert() {
    # $1 key, $2 certificate: same public key?
    key_pub=$(openssl pkey -in "$1" -pubout 2>/dev/null) || return 1
    cert_pub=$(openssl x509 -in "$2" -noout -pubkey 2>/dev/null) || return 1
    [ -n "$key_pub" ] && [ "$key_pub" = "$cert_pub" ]
}

is_pkcs8_pem() {
    # Graylog accepts unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), not PKCS#1
    # ("BEGIN RSA PRIVATE KEY").
    head -n 1 "$1" | grep -qx -- '-----BEGIN PRIVATE KEY-----'
}

existing_is_usable() {
    [ "$FORCE_REGENERATE" = 1 ] && return 1
    for f in ca.pem server-cert.pem server-key.pem names.txt; do
        [ -s "$TLS_DIR/$f" ] || return 1
    done
    [ "$(cat "$TLS_DIR/names.txt")" = "$names_stamp" ] || return 1
    openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server-cert.pem" >/dev/null 2>&1 || return 1
    openssl x509 -in "$TLS_DIR/server-cert.pem" -noout -checkend "$RENEW_BEFORE_SECONDS" >/dev/null 2>&1 || return 1
    openssl x509 -in "$TLS_DIR/ca.pem" -noout -checkend "$RENEW_BEFORE_SECONDS" >/dev/null 2>&1 || return 1
    is_pkcs8_pem "$TLS_DIR/server-key.pem" || return 1
    key_matches_cert "$TLS_DIR/server-key.pem" "$TLS_DIR/server-cert.pem" || return 1
}

write_ca_config() {
    cat >"$1" <<'EOF'
[ req ]
distinguished_name = ca_dn
prompt             = no
x509_extensions    = ca_ext

[ ca_dn ]
O  = djehouty local development (throwaway)
CN = djehouty local development CA

[ ca_ext ]
basicConstraints     = critical, CA:TRUE, pathlen:0
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
}

write_server_config() {
    {
        cat <<'EOF'
[ req ]
distinguished_name = server_dn
prompt             = no

[ server_dn ]
O  = djehouty local development (throwaway)
CN = localhost

[ server_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = @server_alt_names

[ server_alt_names ]
EOF
        i=1
        for name in $CERT_DNS_NAMES; do
            printf 'DNS.%d = %s\n' "$i" "$name"
            i=$((i + 1))
        done
        i=1
        for ip in $CERT_IP_ADDRESSES; do
            printf 'IP.%d = %s\n' "$i" "$ip"
            i=$((i + 1))
        done
    } >"$1"
}

generate() {
    work=$(mktemp -d)
    # The CA key lives only in this folder, which is removed on exit.
    trap 'rm -rf "$work"' EXIT INT TERM

    write_ca_config "$work/ca.cnf"
    write_server_config "$work/server.cnf"

    log "generating a throwaway CA"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$work/ca-key.pem" 2>/dev/null || die "could not generate the CA key"
    openssl req -new -x509 -config "$work/ca.cnf" -key "$work/ca-key.pem" \
        -sha256 -days "$CA_DAYS" -set_serial "$(random_serial)" \
        -out "$work/ca.pem"

    log "generating the server certificate (DNS: $CERT_DNS_NAMES; IP: $CERT_IP_ADDRESSES)"
    # genpkey writes PKCS#8 PEM, the key format Graylog's TLS inputs read.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$work/server-key.pem" 2>/dev/null || die "could not generate the server key"
    openssl req -new -config "$work/server.cnf" -key "$work/server-key.pem" \
        -out "$work/server.csr"
    # (stderr kept aside: this step chats even when it succeeds)
    openssl x509 -req -in "$work/server.csr" \
        -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -set_serial "$(random_serial)" \
        -sha256 -days "$SERVER_DAYS" \
        -extfile "$work/server.cnf" -extensions server_ext \
        -out "$work/server-cert.pem" 2>"$work/sign.log" \
        || { cat "$work/sign.log" >&2; die "could not sign the server certificate"; }

    # The CA has done its only job.
    rm -f "$work/ca-key.pem"

    openssl verify -CAfile "$work/ca.pem" "$work/server-cert.pem" >/dev/null \
        || die "the new server certificate does not verify against the new CA"
    is_pkcs8_pem "$work/server-key.pem" || die "the server key is not PKCS#8 PEM"
    key_matches_cert "$work/server-key.pem" "$work/server-cert.pem" \
        || die "the server key does not match the server certificate"
    printf '%s\n' "$names_stamp" >"$work/names.txt"

    mkdir -p "$TLS_DIR"
    # Copy under temporary names, then rename, so a reader never sees half a set.
    for f in ca.pem server-cert.pem server-key.pem names.txt; do
        cp "$work/$f" "$TLS_DIR/.$f.new"
    done
    for f in ca.pem server-cert.pem server-key.pem names.txt; do
        mv -f "$TLS_DIR/.$f.new" "$TLS_DIR/$f"
    done
}

umask 077

if existing_is_usable; then
    log "reusing the certificates in $TLS_DIR"
else
    generate
fi

chmod 0755 "$TLS_DIR"
chmod 0644 "$TLS_DIR/ca.pem" "$TLS_DIR/server-cert.pem" "$TLS_DIR/names.txt"
chmod 0600 "$TLS_DIR/server-key.pem"
if [ -n "$KEY_OWNER" ]; then
    chown "$KEY_OWNER" "$TLS_DIR/server-key.pem" \
        || die "could not give the server key to $KEY_OWNER"
fi

if [ -n "$PUBLIC_DIR" ]; then
    umask 022
    mkdir -p "$PUBLIC_DIR"
    chmod 0755 "$PUBLIC_DIR"
    cp "$TLS_DIR/ca.pem" "$PUBLIC_DIR/ca.pem"
    cp "$TLS_DIR/server-cert.pem" "$PUBLIC_DIR/server-cert.pem"
    chmod 0644 "$PUBLIC_DIR/ca.pem" "$PUBLIC_DIR/server-cert.pem"
    # Files made by root in a bind mount would be root's on a Linux host: hand
    # them to whoever owns the folder above (the user's checkout).
    if [ -z "$PUBLIC_OWNER" ] && [ "$(id -u)" = 0 ]; then
        PUBLIC_OWNER=$(stat -c '%u:%g' "$PUBLIC_DIR/.." 2>/dev/null || true)
    fi
    if [ -n "$PUBLIC_OWNER" ]; then
        chown "$PUBLIC_OWNER" "$PUBLIC_DIR" "$PUBLIC_DIR/ca.pem" "$PUBLIC_DIR/server-cert.pem" \
            2>/dev/null || log "note: could not chown $PUBLIC_DIR to $PUBLIC_OWNER (harmless)"
    fi
fi

log "CA:          $(openssl x509 -in "$TLS_DIR/ca.pem" -noout -subject)"
log "CA SHA-256:  $(openssl x509 -in "$TLS_DIR/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2)"
log "server cert: $(openssl x509 -in "$TLS_DIR/server-cert.pem" -noout -enddate)"
if [ -n "$PUBLIC_DIR" ]; then
    log "trust anchor for clients: $PUBLIC_DIR/ca.pem"
fi
