#!/usr/bin/env bash
# Set up the field base station.
#
#   ./install.sh --dev    a developer or CI machine: a virtual environment in .venv inside this
#                         checkout, with the test tools; touches nothing outside the checkout.
#
# Safe to interrupt and to run again: every step checks what is already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'TXT'
Usage: ./install.sh --dev

  --dev      set up this checkout for running the station and its tests:
             a virtual environment in .venv with the station and its test tools.
             Then: .venv/bin/station run      (the station, on the virtual radio
                                               when no radio is plugged in)
                   .venv/bin/python -m pytest (the whole test suite)
  --help     this text

A system install on a Raspberry Pi (services, udev rules, /etc/station) is not
provided by this version of install.sh yet.
TXT
}

need_python() {
    command -v "$python" >/dev/null 2>&1 || die "no $python found: install Python 3.11 or newer (sudo apt-get install python3 python3-venv)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$python" --version 2>&1) is too old: the station needs Python 3.11 or newer"
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "installing python3-venv (Debian splits venv out of Python)"
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        else
            die "Python's venv module is missing: sudo apt-get install python3-venv"
        fi
    fi
}

dev_install() {
    need_python
    if [ ! -x "$venv/bin/python" ]; then
        say "creating the virtual environment in $venv"
        "$python" -m venv "$venv"
    fi
    say "installing the station and its test tools into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
        || die "could not update pip: is there a connection to the Python package index?"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "${here}[test]" \
        || die "could not install the station's packages: is there a connection to the Python package index?"
    say "ready: .venv/bin/station run   |   .venv/bin/python -m pytest"
}

case "${1:-}" in
    --dev) dev_install ;;
    --help|-h) usage ;;
    "") usage; exit 2 ;;
    *) usage >&2; die "unknown option: $1" ;;
esac
