# %postun of osapi ($1: 0 on erase, 1 or more on upgrade). An upgrade restarts
# what runs, on the new version. rpm has no purge: an erase leaves
# /etc/osapi/signing.key, /var/lib/osapi, root's token and the user osapi.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart osapi-nats.service osapi-api.service \
			osapi-agent.service >/dev/null 2>&1 || :
	fi
fi
exit 0
