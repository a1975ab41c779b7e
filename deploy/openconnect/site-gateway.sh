#!/bin/sh
# openconnect --script for a site gateway: a stock openconnect client that carries a site's networks to an
# Isotun server (a site of the tenant names this client's user). `isotun install` puts it next to the program.
#
# It runs the usual vpnc-script first (or the script named in SITE_GATEWAY_VPNC_SCRIPT), which gives the tunnel its
# address and the routes the server pushed, the tenant's other sites among them. Then it turns forwarding on, so the
# hosts of the site reach the tunnel through this host. No NAT: the server accepts the site's own addresses as
# sources, and drops any other.
#
#   sudo openconnect --script /usr/local/lib/isotun/site-gateway.sh --user gw-b https://vpn.example/acme
script="${SITE_GATEWAY_VPNC_SCRIPT:-/usr/share/vpnc-scripts/vpnc-script}"
"$script" "$@" || exit $?
if [ "$reason" = connect ]; then
  echo 1 > /proc/sys/net/ipv4/ip_forward
  if [ -e /proc/sys/net/ipv6/conf/all/forwarding ]; then echo 1 > /proc/sys/net/ipv6/conf/all/forwarding; fi
fi
exit 0
