#!/bin/sh
# Install the Debian packages netwall needs to build, test and run, if any is missing.
set -eu
PKGS="build-essential pkg-config libevent-dev libssl-dev libnghttp2-dev libinih-dev
libcmocka-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev libjansson-dev python3 python3-pytest
python3-cryptography
python3-hl7 sqlite3 irssi weechat-headless tmux docker-compose openssl curl nginx redis-server
redis-tools postgresql
postgresql-client iproute2 nftables procps libseccomp-dev clang chromium fonts-dejavu-core man-db
groff-base strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libcharon-extra-plugins wireguard-tools
wireguard-go prometheus universal-ctags util-linux"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# Servers are only used by the tests, which start their own; keep the packages from
# starting system-wide copies.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends $missing
