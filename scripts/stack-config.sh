# Sourced by scripts/run.sh and scripts/conformance.sh: the configuration of a
# one-host stack (`osapi start`) on loopback, and its signing key.
#
#   write_stack_config DIR API_PORT NATS_PORT [TOKEN_FILE]
#
# writes DIR/signing.key (unless there is one) and DIR/osapi.yaml; with
# TOKEN_FILE, also an `api.client` section so osapictl finds the API and token.
write_stack_config() {
  local dir=$1 api_port=$2 nats_port=$3 token_file=${4:-}
  [ -s "$dir/signing.key" ] || head -c 48 /dev/urandom | base64 -w0 > "$dir/signing.key"
  {
    cat <<YAML
# Written by scripts/stack-config.sh; see packaging/osapi.yaml for every key
# with comments.
api:
  server:
    port: $api_port
    listen: 127.0.0.1
    unix_socket: ""
    nats:
      servers: ["nats://127.0.0.1:$nats_port"]
    security:
      signing_key_file: $dir/signing.key
YAML
    if [ -n "$token_file" ]; then
      cat <<YAML
  client:
    url: http://127.0.0.1:$api_port
    security:
      bearer_token_file: $token_file
YAML
    fi
    cat <<YAML
nats:
  server:
    port: $nats_port
    store_dir: $dir/nats
node:
  agent:
    nats:
      servers: ["nats://127.0.0.1:$nats_port"]
YAML
  } > "$dir/osapi.yaml"
}
