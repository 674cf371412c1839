#!/usr/bin/env bash
# Set up the field base station.
#
#   sudo ./install.sh              install or upgrade the station on this Raspberry Pi (Debian)
#   ./install.sh --dev             a developer or CI machine: .venv in this checkout, nothing else
#   sudo ./install.sh --uninstall  remove the station, keep its data and config (--purge: remove them too)
#   --dry-run                      print every action instead of doing it
#   --root DIR                     install into DIR as if it were / (packaging, tests)
#
# Safe to interrupt and to run again: every step checks what is already there. A re-run on an
# installed station upgrades it in place, applies database migrations, keeps config and data.
set -euo pipefail
# The software in /opt/station must be readable by the station user whatever the admin's own umask
# (027 left it unrunnable); what must stay private (config, data) gets its mode explicitly below.
umask 022

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
mode=""
dry=0
purge=0
root=""

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
# Every change to the system goes through run: printed, and skipped with --dry-run.
run() {
    printf '+ %s\n' "$*"
    if [ "$dry" -eq 0 ]; then "$@"; fi
}

usage() {
    cat <<'TXT'
Usage: ./install.sh --dev
       sudo ./install.sh [--dry-run] [--root DIR]
       sudo ./install.sh --uninstall [--purge] [--dry-run] [--root DIR]

  --dev        set up this checkout for running the station and its tests:
               a virtual environment in .venv with the station and its test tools.
               Then: .venv/bin/station run      (the station, on the virtual radio
                                                 when no radio is plugged in)
                     .venv/bin/python -m pytest (the whole test suite)
  (none)       install or upgrade the station as a service: user "station",
               /opt/station, /etc/station/station.toml, /var/lib/station,
               systemd units and udev rules; enables and starts the services
  --uninstall  stop and remove the services and /opt/station; keep the data
               and the config (add --purge to remove them too)
  --dry-run    print what would be done, change nothing
  --root DIR   treat DIR as the root of the system (no services are started)
  --help       this text
TXT
}

need_python() {
    command -v "$python" >/dev/null 2>&1 || die "no $python found: install Python 3.11 or newer (sudo apt-get install python3 python3-venv)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$python" --version 2>&1) is too old: the station needs Python 3.11 or newer"
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "installing python3-venv (Debian splits venv out of Python)"
            run apt-get update -qq
            run apt-get install -y -qq python3-venv
        else
            die "Python's venv module is missing: sudo apt-get install python3-venv"
        fi
    fi
}

pip_install() {  # venv, then what to install
    local venv="$1"; shift
    run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
        || die "could not update pip: is there a connection to the Python package index?"
    # The tested versions (constraints.txt), not whatever is newest on install day.
    run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$here/constraints.txt" "$@" \
        || die "could not install the station's packages: is there a connection to the Python package index?"
}

dev_install() {
    need_python
    if [ ! -x "$here/.venv/bin/python" ]; then
        say "creating the virtual environment in $here/.venv"
        run "$python" -m venv "$here/.venv"
    fi
    say "installing the station and its test tools into $here/.venv"
    pip_install "$here/.venv" -e "${here}[test]"
    # axe-core, the accessibility checker the browser tests run on every console page (npm's
    # registry; pinned). Without npm those tests skip on a developer's machine and fail in CI.
    if command -v npm >/dev/null 2>&1 && [ ! -e "$here/.venv/node/node_modules/axe-core/package.json" ]; then
        run npm install --prefix "$here/.venv/node" --no-save --no-audit --no-fund --silent axe-core@4.10.2
    fi
    say "ready: .venv/bin/station run   |   .venv/bin/python -m pytest"
}

# ---- system install ------------------------------------------------------------------------
opt() { printf '%s/opt/station' "$root"; }
etc() { printf '%s/etc/station' "$root"; }
var() { printf '%s/var/lib/station' "$root"; }
units() { printf '%s/etc/systemd/system' "$root"; }
rules() { printf '%s/etc/udev/rules.d' "$root"; }

check_system() {
    [ "$(id -u)" -eq 0 ] || die "a system install needs root: sudo ./install.sh (or ./install.sh --dev for a checkout)"
    if [ -z "$root" ]; then
        [ -r /etc/os-release ] || die "cannot tell which system this is (/etc/os-release is missing)"
        # shellcheck disable=SC1091
        . /etc/os-release
        case "${ID:-}:${ID_LIKE:-}" in
            debian:*|raspbian:*|*:*debian*) ;;
            *) die "this installer is for Debian and Raspberry Pi OS; found ${PRETTY_NAME:-unknown}" ;;
        esac
        command -v systemctl >/dev/null 2>&1 || die "systemd is required (systemctl not found)"
    fi
}

apt_packages() {
    [ -z "$root" ] || return 0   # a --root install uses what the image already has
    local want=(python3 python3-venv sqlite3 libjs-leaflet age nginx-light openssl)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing system packages: ${missing[*]}"
        run apt-get update -qq || die "apt-get update failed: is there an internet connection?"
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
            || die "could not install ${missing[*]}"
    fi
}

user_and_groups() {
    local passwd="$root/etc/passwd" group="$root/etc/group"
    grep -q '^gpio:' "$group" 2>/dev/null || run groupadd --system ${root:+--root "$root"} gpio
    if ! grep -q '^station:' "$passwd" 2>/dev/null; then
        run useradd --system ${root:+--root "$root"} --home-dir /var/lib/station --no-create-home \
            --shell /usr/sbin/nologin --user-group --groups dialout,gpio station
    else
        run usermod ${root:+--root "$root"} --append --groups dialout,gpio station
    fi
}

files() {
    run install -d -m 0755 "$(opt)"
    run install -d -m 0750 "$(etc)"
    run install -d -m 0750 "$(var)"
    if [ "$dry" -eq 0 ]; then
        chroot_chown root:station "$(etc)"
        chroot_chown station:station "$(var)"
    else
        printf '+ chown root:station %s; chown station:station %s\n' "$(etc)" "$(var)"
    fi
    if [ ! -x "$(opt)/venv/bin/python" ]; then
        run "$python" -m venv "$(opt)/venv"
    fi
    say "installing the station into $(opt)/venv"
    pip_install "$(opt)/venv" --upgrade "$here"
    run install -m 0644 "$here/README.md" "$(opt)/README.md"
    local cfg
    cfg="$(etc)/station.toml"
    if [ -e "$cfg" ]; then
        say "keeping the existing $cfg"
    else
        say "writing $cfg from the example (radio /dev/meshtastic, database /var/lib/station)"
        if [ "$dry" -eq 0 ]; then
            sed -e 's|^port = "auto"|port = "/dev/meshtastic"|' \
                -e 's|^database = "station-data/station.db"|database = "/var/lib/station/station.db"|' \
                -e 's|^certificate = ""|certificate = "/etc/station/tls/console.crt"|' \
                -e 's|^secure_cookies = false|secure_cookies = true|' \
                "$here/station.example.toml" > "$cfg.new"
            chmod 0640 "$cfg.new"
            chroot_chown root:station "$cfg.new"
            mv "$cfg.new" "$cfg"
        else
            printf '+ write %s (mode 0640, root:station)\n' "$cfg"
        fi
    fi
    run install -d -m 0755 "$(units)" "$(rules)"
    for unit in "$here"/systemd/station*.service "$here"/systemd/station*.timer; do
        run install -m 0644 "$unit" "$(units)/$(basename "$unit")"
    done
    run install -m 0644 "$here/hardware/udev/99-station.rules" "$(rules)/99-station.rules"
    tls
}

# The console on the office network: nginx serves it over HTTPS with a certificate made here
# (the console itself listens on loopback only, in plain HTTP).
tls() {
    local sites="$root/etc/nginx"
    run install -d -m 0755 "$sites/sites-available" "$sites/sites-enabled"
    run install -m 0644 "$here/systemd/nginx/station-console.conf" "$sites/sites-available/station-console"
    run ln -sfn ../sites-available/station-console "$sites/sites-enabled/station-console"
    # Debian's welcome page would answer on port 80 instead of the move to HTTPS.
    if [ -L "$sites/sites-enabled/default" ]; then run rm -f "$sites/sites-enabled/default"; fi
    if [ "$dry" -eq 0 ]; then
        "$here/systemd/nginx/make-certificate.sh" "$(etc)/tls" "$(hostname)"
    else
        printf '+ %s %s %s\n' "$here/systemd/nginx/make-certificate.sh" "$(etc)/tls" "$(hostname)"
    fi
}

# chown by name inside --root uses the image's user database, not this machine's.
chroot_chown() {
    local owner="$1" path="$2"
    if [ -n "$root" ]; then
        local uid gid
        uid=$(awk -F: -v u="${owner%%:*}" '$1==u {print $3}' "$root/etc/passwd")
        gid=$(awk -F: -v g="${owner##*:}" '$1==g {print $3}' "$root/etc/group")
        chown "${uid:-0}:${gid:-0}" "$path"
    else
        chown "$owner" "$path"
    fi
}

migrate() {
    say "applying database migrations"
    if [ -z "$root" ]; then
        run runuser -u station -- "$(opt)/venv/bin/station" --config /etc/station/station.toml status >/dev/null
    else
        run "$(opt)/venv/bin/station" --config "$(etc)/station.toml" status >/dev/null || true
    fi
}

services() {
    if [ -n "$root" ]; then
        run systemctl --root="$root" enable station.service station-console.service station-backup.timer
        return
    fi
    run udevadm control --reload-rules
    run udevadm trigger --subsystem-match=tty
    run systemctl daemon-reload
    run systemctl enable station.service station-console.service station-backup.timer
    run systemctl restart station.service station-console.service
    run systemctl start station-backup.timer
    run nginx -t
    run systemctl enable nginx.service
    run systemctl reload-or-restart nginx.service
}

system_install() {
    # The service runs Debian's Python, not whichever python3 comes first in root's PATH (a
    # pyenv under /root would be unreadable to the station user).
    if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi
    check_system
    apt_packages
    need_python
    user_and_groups
    files
    [ -n "$root" ] || migrate
    services
    cat <<TXT

The station is installed${root:+ in $root}.
Next:
  1. Plug in the radio (it appears as /dev/meshtastic) and, if you have one, the GPS.
  2. Check it:            sudo -u station $(printf '%s' /opt/station/venv/bin/station) doctor
  3. Register bracelets:  sudo -u station /opt/station/venv/bin/station bracelets add NODE --label NAME
  4. Edit /etc/station/station.toml for backups ([backup] dir) and publishing ([[destinations]]).
  5. Open https://THIS-PI/ from the office network (or http://127.0.0.1:8080/ on the Pi).
     Your browser warns once about the station's own certificate: accept it only if the
     SHA-256 fingerprint it shows is the one station doctor prints. The first page creates the
     administrator with the setup code the console printed:
       sudo /opt/station/venv/bin/station --config /etc/station/station.toml users setup-code
TXT
}

uninstall() {
    [ "$(id -u)" -eq 0 ] || die "uninstalling needs root: sudo ./install.sh --uninstall"
    if [ -z "$root" ]; then
        run systemctl disable --now station.service station-console.service station-backup.timer \
            station-hub.service station-hub-broker.service || true
    else
        run systemctl --root="$root" disable station.service station-console.service station-backup.timer \
            station-hub.service station-hub-broker.service || true
    fi
    for f in "$(units)"/station.service "$(units)"/station-console.service "$(units)"/station-backup.service \
             "$(units)"/station-backup.timer "$(units)"/station-hub.service "$(units)"/station-hub-broker.service \
             "$(rules)/99-station.rules" "$root/etc/nginx/sites-enabled/station-console" \
             "$root/etc/nginx/sites-available/station-console"; do
        if [ -e "$f" ] || [ -L "$f" ]; then run rm -f "$f"; fi
    done
    if [ -z "$root" ] && command -v nginx >/dev/null 2>&1; then run systemctl reload nginx.service || true; fi
    [ -d "$(opt)" ] && run rm -rf "$(opt)"
    if [ "$purge" -eq 1 ]; then
        [ -d "$(etc)" ] && run rm -rf "$(etc)"
        [ -d "$(var)" ] && run rm -rf "$(var)"
        grep -q '^station:' "$root/etc/passwd" 2>/dev/null && run userdel ${root:+--root "$root"} station
        say "removed the station, its data and its config"
    else
        say "removed the station; kept $(var) (the data) and $(etc) (the config): --purge removes them"
    fi
    [ -n "$root" ] || run systemctl daemon-reload
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dev) mode=dev ;;
        --uninstall) mode=uninstall ;;
        --purge) purge=1 ;;
        --dry-run) dry=1 ;;
        --root) shift; [ $# -gt 0 ] || die "--root needs a folder"; root="$(cd "$1" && pwd)" ;;
        --help|-h) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

case "$mode" in
    dev) dev_install ;;
    uninstall) uninstall ;;
    *) system_install ;;
esac
