#!/bin/bash
# The login program telnetd runs for captures/make_net_captures.sh (telnetd -E): it prompts like
# login(1) (user name echoed, password not), so the capture has a real Telnet login without a system
# account. Accepts user alice with password s3cret-telnet; one wrong attempt first is allowed.
for attempt in 1 2; do
  printf 'itc-net login: '
  IFS= read -r user || exit 1
  stty -echo 2>/dev/null
  printf 'Password: '
  IFS= read -r pw || exit 1
  stty echo 2>/dev/null
  printf '\r\n'
  user=${user%$'\r'}; pw=${pw%$'\r'}
  if [ "$user" = alice ] && [ "$pw" = s3cret-telnet ]; then
    printf 'Last login: Sun Dec  6 17:00:00 2026 from 10.81.0.10\r\n'
    printf 'alice@itc-net:~$ '
    IFS= read -r cmd || exit 0
    printf 'itc-net\r\n'
    exit 0
  fi
  printf '\r\nLogin incorrect\r\n'
done
exit 1
