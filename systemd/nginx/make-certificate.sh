#!/usr/bin/env bash
# Make the console's TLS certificate, once: make-certificate.sh DIR [HOSTNAME]
#
# Self-signed, for ten years: a station has no internet to renew a public one, and its
# coordinators check the fingerprint instead (station doctor and the console's health page show
# it; the browser shows it once, when they accept the certificate). An existing key is kept, so
# a re-install does not make every coordinator's browser warn again.
set -euo pipefail
dir="${1:?usage: make-certificate.sh DIR [HOSTNAME]}"
host="${2:-$(hostname)}"
key="$dir/console.key"
crt="$dir/console.crt"
install -d -m 0755 "$dir"
if [ -s "$key" ] && [ -s "$crt" ]; then
    printf 'keeping the existing certificate %s\n' "$crt"
else
    # Written under a private umask: the key is never readable by others, not even briefly.
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=$host" \
        -addext "subjectAltName=DNS:$host,DNS:$host.local,DNS:localhost,IP:127.0.0.1" \
        -keyout "$key" -out "$crt" 2>/dev/null)
    chmod 0644 "$crt"
    printf 'made %s for %s\n' "$crt" "$host"
fi
openssl x509 -in "$crt" -noout -fingerprint -sha256
