# %post of osapi ($1: 1 on first install, 2 or more on upgrade).
# The user osapi, a random token signing key (0640 root:osapi), an admin token
# for root, and on first install the units enabled and started.
KEY=/etc/osapi/signing.key
ROOT_DIR=/root/.config/osapi
ROOT_TOKEN=$ROOT_DIR/admin.token
ROOT_CONFIG=$ROOT_DIR/osapictl.yaml

systemd-sysusers /usr/lib/sysusers.d/osapi.conf || :
systemd-tmpfiles --create /usr/lib/tmpfiles.d/osapi.conf >/dev/null 2>&1 || :

if [ ! -s "$KEY" ]; then
	tmp=$(mktemp /etc/osapi/.signing.key.XXXXXX)
	head -c 48 /dev/urandom | base64 -w0 >"$tmp"
	chown root:osapi "$tmp"
	chmod 0640 "$tmp"
	mv "$tmp" "$KEY"
fi

# The API's HTTPS certificate (kept when present); osapictl pins its CA.
/usr/bin/osapi tls generate >/dev/null || :

# One NATS nkey per role in /var/lib/osapi/credentials (kept when present).
/usr/bin/osapi -f /etc/osapi/osapi.yaml nats credentials >/dev/null || :

if ! { [ -s "$ROOT_TOKEN" ] &&
	/usr/bin/osapi -f /etc/osapi/osapi.yaml token validate - <"$ROOT_TOKEN" >/dev/null 2>&1; }; then
	install -d -m 0700 "$ROOT_DIR"
	tmp=$(mktemp "$ROOT_DIR/.admin.token.XXXXXX")
	if /usr/bin/osapi -f /etc/osapi/osapi.yaml token generate -r admin -u root --ttl 8760h >"$tmp"; then
		chmod 0600 "$tmp"
		mv "$tmp" "$ROOT_TOKEN"
	else
		rm -f "$tmp"
		echo "osapi: could not write an admin token for root (see osapi config check)" >&2
	fi
	if [ -s "$ROOT_TOKEN" ] && [ ! -e "$ROOT_CONFIG" ]; then
		(umask 077 && cat >"$ROOT_CONFIG") <<CONFIG
# osapictl settings for root, written by the osapi package on first install.
# The token is an admin token valid for a year; renew it with
#   osapi token generate -r admin -u root --ttl 8760h > $ROOT_TOKEN
api:
  client:
    url: https://127.0.0.1:8080
    security:
      bearer_token_file: $ROOT_TOKEN
    tls:
      ca_file: /etc/osapi/tls/ca.crt
CONFIG
	fi
fi

if [ "$1" -eq 1 ]; then
	systemctl enable osapi.target osapi-nats.socket osapi-api.socket osapi-agent.socket \
		osapi-agent.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || :
		systemctl start osapi.target >/dev/null 2>&1 || :
	fi
fi
exit 0
