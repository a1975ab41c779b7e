#!/bin/sh
# openconnect --script for the interop tests: configures only the TUN device openconnect made (link, address,
# the tunnel network and the split-include routes). Unlike vpnc-script it never touches /etc/resolv.conf or
# any other host state, and it ignores every reason but "connect" (the device goes away with openconnect).
[ "$reason" = connect ] || exit 0
set -e
ip link set dev "$TUNDEV" up mtu "$INTERNAL_IP4_MTU"
if [ -n "$INTERNAL_IP4_NETADDR" ] && [ -n "$INTERNAL_IP4_NETMASKLEN" ]; then
  ip route replace "$INTERNAL_IP4_NETADDR/$INTERNAL_IP4_NETMASKLEN" dev "$TUNDEV"
fi
i=0
while [ "$i" -lt "${CISCO_SPLIT_INC:-0}" ]; do
  eval "addr=\$CISCO_SPLIT_INC_${i}_ADDR len=\$CISCO_SPLIT_INC_${i}_MASKLEN"
  ip route replace "$addr/$len" dev "$TUNDEV"
  i=$((i + 1))
done
# The address last: the tests take an address on the device as "the tunnel is up", so the routes must be there
# by then (a ping sent between the two once found no route).
ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
