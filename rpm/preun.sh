# %preun of osapi ($1: 0 on erase, 1 or more on upgrade): erase stops and
# disables the appliance.
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable --now osapi.target osapi-agent.service osapi-api.service \
		osapi-nats.service osapi-agent.socket osapi-api.socket osapi-nats.socket >/dev/null 2>&1 || :
fi
exit 0
