#!/usr/bin/env bash
# Prepares the docker-compose stack on this machine, then: docker compose up -d
#   .env          from .env.example; every empty value becomes a random secret (openssl rand)
#   certs/        a development CA and a TLS certificate for the host of MCP_PUBLIC_URL,
#                 localhost, 127.0.0.1 and ::1 (trust certs/ca.crt, or bring your own
#                 certs/tls.crt + certs/tls.key)
# Idempotent: a value already set in .env and a certificate already present are never replaced.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 077

command -v openssl >/dev/null 2>&1 || { echo "setup.sh: openssl is required" >&2; exit 1; }

ENV_FILE=.env
CERTS=certs

# The value of KEY in .env (the last assignment), empty when unset.
env_get() {
  awk -v k="$1" 'index($0, k "=") == 1 { v = substr($0, length(k) + 2) } END { print v }' \
    "$ENV_FILE"
}

# Sets KEY=VALUE in .env: replaces the first KEY= line (dropping later ones), else appends.
env_put() {
  local tmp
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  awk -v k="$1" -v v="$2" '
    index($0, k "=") == 1 { if (!done) print k "=" v; done = 1; next }
    { print }
    END { if (!done) print k "=" v }
  ' "$ENV_FILE" >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

# ---- .env ----------------------------------------------------------------------------------

if [[ ! -f $ENV_FILE ]]; then
  cp .env.example "$ENV_FILE"
  echo "created   $ENV_FILE from .env.example"
fi
chmod 600 "$ENV_FILE"

while IFS= read -r line || [[ -n $line ]]; do
  [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
  key=${BASH_REMATCH[1]}
  default=${BASH_REMATCH[2]}
  if [[ -n $(env_get "$key") ]]; then
    echo "kept      $key"
  elif [[ -z $default ]]; then
    # Hex: safe unquoted in .env, JSON, JDBC and shell alike.
    env_put "$key" "$(openssl rand -hex 32)"
    echo "generated $key"
  else
    env_put "$key" "$default"
    echo "default   $key=$default"
  fi
done <.env.example

public_url=$(env_get MCP_PUBLIC_URL)
if [[ ! $public_url =~ ^https://[^/]+$ ]]; then
  echo "setup.sh: MCP_PUBLIC_URL must be https://host[:port] without a path or trailing slash" \
    "(got '$public_url')" >&2
  exit 1
fi
url_port=443
[[ $public_url =~ :([0-9]+)$ ]] && url_port=${BASH_REMATCH[1]}
if [[ $url_port != "$(env_get HTTPS_PORT)" ]]; then
  echo "note: MCP_PUBLIC_URL names port $url_port, nginx publishes on HTTPS_PORT" \
    "$(env_get HTTPS_PORT): fine only when something in front forwards one to the other" >&2
fi

# ---- certificates --------------------------------------------------------------------------

mkdir -p "$CERTS"
chmod 755 "$CERTS"
if [[ -s $CERTS/tls.crt && -s $CERTS/tls.key ]]; then
  echo "kept      $CERTS/tls.crt, $CERTS/tls.key"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT

  if [[ ! -s $CERTS/ca.crt || ! -s $CERTS/ca.key ]]; then
    cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = mcp-edge development CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
      -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" \
      -config "$work/ca.cnf" -extensions v3_ca 2>/dev/null
    echo "generated $CERTS/ca.crt (development CA; its key stays in $CERTS/ca.key)"
  fi

  host=${public_url#https://}
  host=${host%:*}
  san="DNS:localhost, IP:127.0.0.1, IP:::1"
  if [[ $host != localhost && $host != 127.0.0.1 ]]; then
    if [[ $host =~ ^[0-9.]+$ ]]; then san="IP:$host, $san"; else san="DNS:$host, $san"; fi
  fi
  cat >"$work/leaf.cnf" <<EOF
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "/CN=$host" \
    -keyout "$CERTS/tls.key" -out "$work/tls.csr" 2>/dev/null
  # 397 days: the longest validity browsers accept for a server certificate.
  openssl x509 -req -sha256 -days 397 -in "$work/tls.csr" \
    -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$work/leaf.cnf" -extensions v3_leaf -out "$CERTS/tls.crt" 2>/dev/null
  # nginx (root) reads the key; the certificates are public.
  chmod 644 "$CERTS/ca.crt" "$CERTS/tls.crt"
  echo "generated $CERTS/tls.crt for $san"
fi

cat <<EOF

Ready. Next: docker compose up -d --build    (then README.md, "Get a token")
Clients must trust $CERTS/ca.crt: curl --cacert $CERTS/ca.crt, NODE_EXTRA_CA_CERTS=$CERTS/ca.crt,
or import it into the system or browser trust store.
EOF
