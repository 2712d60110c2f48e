#!/usr/bin/env bash
# Prepares the docker-compose stack on this machine, then: docker compose up -d
#   .env          from .env.example; every empty value becomes a random secret (openssl rand),
#                 MCP_EDGE_USER the user the gateway runs as (the owner of secrets/)
#   certs/        a development CA and a TLS certificate for the host of MCP_PUBLIC_URL,
#                 localhost, 127.0.0.1 and ::1 (trust certs/ca.crt, or bring your own
#                 certs/tls.crt + certs/tls.key, and the CA that issued them as certs/ca.crt)
#   secrets/      the gateway's own secrets, mode 0400: the broker's client secret at Keycloak
#                 (a copy of MCP_BROKER_CLIENT_SECRET), its token signing keys (ES256 JWKS), its
#                 cookie keys, and the keys sealing what it stores (AES-256)
# Idempotent: a value already set in .env, a certificate or a secret file already present are
# never replaced (secrets/broker-client-secret follows .env). No secret is ever printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 077

command -v openssl >/dev/null 2>&1 || { echo "setup.sh: openssl is required" >&2; exit 1; }

ENV_FILE=.env
CERTS=certs
SECRETS=secrets

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
  [[ $key == MCP_EDGE_USER ]] && continue # not a secret: set with secrets/ below
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
if [[ ! -s $CERTS/ca.crt ]]; then
  echo "setup.sh: $CERTS/ca.crt is missing: the gateway reaches Keycloak through nginx and checks" \
    "its certificate against it. Put the CA certificate that issued $CERTS/tls.crt there" \
    "(for a public CA, its root certificate)" >&2
  exit 1
fi

# ---- secrets/ ------------------------------------------------------------------------------

# The gateway container runs as the owner of these files: whoever runs this script, or the
# image's own user `node` (1000:1000) when root runs it, never root. Under rootless Docker, set
# MCP_EDGE_USER=0:0 in .env: the container's root is your own user there.
gateway_user=$(env_get MCP_EDGE_USER)
if [[ -z $gateway_user ]]; then
  if [[ $(id -u) == 0 ]]; then gateway_user=1000:1000; else gateway_user="$(id -u):$(id -g)"; fi
  env_put MCP_EDGE_USER "$gateway_user"
  echo "default   MCP_EDGE_USER=$gateway_user (the gateway runs as the owner of $SECRETS/)"
else
  echo "kept      MCP_EDGE_USER"
fi
if [[ ! $gateway_user =~ ^[0-9]+:[0-9]+$ ]]; then
  echo "setup.sh: MCP_EDGE_USER must be uid:gid in numbers (got '$gateway_user')" >&2
  exit 1
fi
if [[ $(id -u) != 0 && $gateway_user != "$(id -u):$(id -g)" && $gateway_user != 0:0 ]]; then
  echo "note: MCP_EDGE_USER=$gateway_user is not you: the gateway can read $SECRETS/ only if" \
    "that user owns it (run setup.sh as that user, or chown the files)" >&2
fi

mkdir -p "$SECRETS"
chmod 700 "$SECRETS"

# Writes stdin to secrets/NAME, mode 0400, owned by the gateway's user; replaces it at once.
secret_put() {
  local tmp
  tmp=$(mktemp "$SECRETS/.$1.XXXXXX")
  cat >"$tmp"
  chmod 400 "$tmp"
  if [[ $(id -u) == 0 ]]; then chown "$gateway_user" "$tmp"; fi
  mv -f "$tmp" "$SECRETS/$1"
}

# The bytes of a hex string, base64url without padding (RFC 7515 §2), through pipes only.
b64url_hex() {
  # shellcheck disable=SC2059 # the format is the escaped bytes themselves
  printf "$(printf '%s' "$1" | sed 's/../\\x&/g')" | openssl base64 -A | tr '+/' '-_' | tr -d '='
}

# A private JWKS with one new P-256 key for ES256 (RFC 7518 §6.2). The key never touches disk
# in PEM form: openssl prints its numbers, which become the JWK's d, x and y.
es256_jwks() {
  local text d pub kid
  text=$(openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl ec -text -noout 2>/dev/null)
  d=$(printf '%s\n' "$text" | awk '/^priv:/ { f = 1; next } /^[^ ]/ { f = 0 } f' | tr -d ' :\n')
  pub=$(printf '%s\n' "$text" | awk '/^pub:/ { f = 1; next } /^[^ ]/ { f = 0 } f' | tr -d ' :\n')
  # d is 32 bytes: openssl may drop leading zero bytes or add a sign byte.
  d=$(printf '%064s' "$d" | tr ' ' 0)
  d=${d: -64}
  if [[ ! $d =~ ^[0-9a-f]{64}$ || ! $pub =~ ^04[0-9a-f]{128}$ ]]; then
    echo "setup.sh: could not read the new EC key from openssl's output" >&2
    exit 1
  fi
  kid="es256-$(openssl rand -hex 8)"
  printf '{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"%s","x":"%s","y":"%s","d":"%s"}]}\n' \
    "$kid" "$(b64url_hex "${pub:2:64}")" "$(b64url_hex "${pub:66:64}")" "$(b64url_hex "$d")"
}

# Creates secrets/NAME from a generator once; a file already there keeps its value.
secret_once() {
  local name=$1 generator=$2
  if [[ -s $SECRETS/$name ]]; then
    echo "kept      $SECRETS/$name"
  else
    "$generator" | secret_put "$name"
    echo "generated $SECRETS/$name"
  fi
}

cookie_keys() { printf '["%s"]\n' "$(openssl rand -hex 32)"; }
# Key id k1 is what gateway.yaml names active (secrets.active); rotate by adding k2 and switching.
sealing_keys() { printf '{"k1":"%s"}\n' "$(openssl rand 32 | openssl base64 -A | tr '+/' '-_' | tr -d '=')"; }

# The client secret lives in .env (Keycloak's realm import reads it from the environment); the
# gateway reads this copy, which follows .env so that the two cannot drift apart.
client_secret=$(env_get MCP_BROKER_CLIENT_SECRET)
if [[ -s $SECRETS/broker-client-secret && $(<"$SECRETS/broker-client-secret") == "$client_secret" ]]; then
  echo "kept      $SECRETS/broker-client-secret"
else
  printf '%s\n' "$client_secret" | secret_put broker-client-secret
  echo "wrote     $SECRETS/broker-client-secret (MCP_BROKER_CLIENT_SECRET of .env)"
fi
secret_once broker-signing-keys.json es256_jwks
secret_once broker-cookie-keys.json cookie_keys
secret_once sealing-keys.json sealing_keys

# Modes and owners of files kept from an earlier run, or copied in by hand.
for f in "$SECRETS"/*; do
  chmod 400 "$f"
  if [[ $(id -u) == 0 ]]; then chown "$gateway_user" "$f"; fi
done

cat <<EOF

Ready. Next: docker compose up -d --build    (then README.md, "Get a token")
Clients must trust $CERTS/ca.crt: curl --cacert $CERTS/ca.crt, NODE_EXTRA_CA_CERTS=$CERTS/ca.crt,
or import it into the system or browser trust store.
EOF
