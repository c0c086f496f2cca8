#!/bin/sh
# Installs what building and testing MLX Fleet needs, and nothing when it is
# all there already. Debian/Ubuntu (apt) and macOS (Homebrew).
set -eu

# The last line of each list holds the real servers the tests run against.
DEBIAN_PACKAGES="build-essential cmake pkg-config git
  libnng-dev libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev
  libcurl4-openssl-dev libssl-dev libmicrohttpd-dev libjansson-dev libinih-dev
  libcmocka-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
  prometheus openssl"
BREW_PACKAGES="cmake pkg-config nng protobuf-c sqlite curl openssl@3 libmicrohttpd
  jansson inih cmocka
  prometheus node nginx"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-deps: need root to install packages (run as root or install sudo)" >&2
        exit 1
    fi
}

if command -v apt-get >/dev/null 2>&1; then
    missing=""
    for p in $DEBIAN_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
    # Node.js runs the tests that drive the API with the official openai and
    # ollama clients; any node 18+ will do, so Debian's is installed only
    # when none is there.
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    if [ -n "$missing" ]; then
        echo "install-deps: installing$missing"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $missing
    fi
    # nginx is bench_route's reference proxy and nothing more. Its package
    # starts a service on port 80 (and fails to install where that port is
    # taken), so a policy-rc.d keeps it from starting during the install
    # unless the machine has one already, and it is disabled at boot.
    if ! dpkg-query -W -f='${Status}' nginx 2>/dev/null | grep -q "ok installed"; then
        echo "install-deps: installing nginx (its service left stopped and disabled)"
        policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            policy=/usr/sbin/policy-rc.d
            as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
            trap 'as_root rm -f "$policy"' EXIT
        fi
        [ -n "$missing" ] || as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends nginx
        if [ -n "$policy" ]; then
            as_root rm -f "$policy"
            trap - EXIT
        fi
        if [ -d /run/systemd/system ]; then
            as_root systemctl disable --now nginx >/dev/null 2>&1 || true
        else
            as_root update-rc.d nginx disable >/dev/null 2>&1 || true
        fi
    fi
elif command -v brew >/dev/null 2>&1; then
    for p in $BREW_PACKAGES; do
        brew list --versions "$p" >/dev/null 2>&1 || brew install "$p"
    done
else
    echo "install-deps: no apt-get or brew; install these yourself: $DEBIAN_PACKAGES" >&2
    exit 1
fi
