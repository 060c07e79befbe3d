#!/bin/sh
# Install birdnet-edge as a systemd service: Raspberry Pi OS / Debian (Bookworm, Trixie), 64-bit.
#
#   sudo ./systemd/install.sh                      install, or upgrade in place; enable, (re)start
#   sudo ./systemd/install.sh --uninstall          remove the service and the venv; keep the
#                                                  config and the data (detections, models)
#   sudo ./systemd/install.sh --uninstall --purge  also remove config, data and the user
#   ./systemd/install.sh --root DIR [...]          install into the tree DIR instead of / (for
#                                                  packaging and tests): no apt-get, useradd,
#                                                  chown or systemctl start; prints them instead
#
# What goes where (systemd/birdnet-edge.service expects exactly these paths):
#   /opt/birdnet-edge/venv                      the virtual environment with the package
#   /etc/birdnet-edge/config.yaml               your config (written once, never overwritten)
#   /etc/birdnet-edge/mqtt-password             your MQTT password, if any (you create it)
#   /var/lib/birdnet-edge/models                the BirdNET model
#   /var/lib/birdnet-edge/detections.db         the detection log (written by the service)
#   /etc/systemd/system/birdnet-edge.service    the unit
set -eu
# The service user must be able to read the venv and the model, whatever root's umask is.
umask 022

SERVICE=birdnet-edge.service
SERVICE_USER=birdnet-edge
PREFIX=/opt/birdnet-edge
VENV=$PREFIX/venv
CONF_DIR=/etc/birdnet-edge
CONF=$CONF_DIR/config.yaml
STATE_DIR=/var/lib/birdnet-edge
MODEL_DIR=$STATE_DIR/models
UNIT_DIR=/etc/systemd/system

HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
SRC=$(dirname -- "$HERE")

usage() {
    cat <<EOF
Usage: $0 [options]

Install (or upgrade) birdnet-edge as the systemd service $SERVICE.

Options:
  --package SPEC   what pip installs (default: this checkout, $SRC)
  --python PY      Python 3.10-3.13 for the virtual environment (default: python3)
  --no-venv        do not create the venv, pip install or install the model
  --no-model       do not install the BirdNET model
  --no-start       enable the service but do not (re)start it
  --root DIR       install into the directory tree DIR instead of / (see the top of this file)
  --uninstall      stop and remove the service and $PREFIX; keep config and data
  --purge          with --uninstall: also remove $CONF_DIR, $STATE_DIR and the user
  -h, --help       show this help
EOF
}

say() { printf '%s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

ARGS=$*
ROOT=''
PACKAGE=''
PYTHON=python3
DO_VENV=1
DO_MODEL=1
DO_START=1
ACTION=install
PURGE=0
while [ $# -gt 0 ]; do
    case $1 in
        --package) [ $# -ge 2 ] || die "--package needs a value"; PACKAGE=$2; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs a value"; PYTHON=$2; shift ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift ;;
        --no-venv) DO_VENV=0 ;;
        --no-model) DO_MODEL=0 ;;
        --no-start) DO_START=0 ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
    shift
done
[ "$PURGE" = 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"

if [ -n "$ROOT" ]; then
    mkdir -p -- "$ROOT"
    ROOT=$(CDPATH='' cd -- "$ROOT" && pwd)
    [ "$ROOT" != / ] || die "--root / is this machine: leave --root out"
elif [ "$(id -u)" != 0 ]; then
    die "run as root: sudo $0 $ARGS"
fi

# A path inside the target tree.
at() { printf '%s%s' "$ROOT" "$1"; }

# Change the machine itself (users, packages, ownership, running services). In --root mode,
# print the command instead: the tree in DIR is all that is touched.
system() {
    if [ -n "$ROOT" ]; then
        say "  would run: $*"
    else
        "$@"
    fi
}

# Copy a file unless the target already has the same content; tells which it was.
put() { # put MODE SOURCE TARGET
    if [ -f "$3" ] && cmp -s -- "$2" "$3"; then
        say "  unchanged $3"
    else
        install -m "$1" -- "$2" "$3"
        say "  installed $3"
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }

install_packages() {
    missing=''
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
    if have ldconfig && ! ldconfig -p | grep -q 'libportaudio\.so\.2'; then
        missing="$missing libportaudio2"
    fi
    [ -n "$missing" ] || return 0
    if [ -n "$ROOT" ]; then
        say "  would run: apt-get install -y --no-install-recommends$missing"
    elif have apt-get; then
        say "installing system packages:$missing"
        apt-get update -qq
        # shellcheck disable=SC2086  # a list of package names
        apt-get install -y --no-install-recommends $missing
    else
        die "install these packages with your package manager first:$missing"
    fi
}

create_user() {
    say "service user $SERVICE_USER (groups $SERVICE_USER, audio)"
    if [ -n "$ROOT" ]; then
        say "  would run: useradd --system --user-group --groups audio --home-dir $STATE_DIR" \
            "--no-create-home --shell /usr/sbin/nologin $SERVICE_USER"
        return
    fi
    getent group audio >/dev/null || groupadd --system audio
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        useradd --system --user-group --groups audio --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "birdnet-edge bird listener" "$SERVICE_USER"
        say "  created"
    elif id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx audio; then
        say "  exists"
    else
        usermod -a -G audio "$SERVICE_USER"
        say "  added to group audio"
    fi
}

python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

install_venv() {
    spec=$PACKAGE
    if [ -z "$spec" ]; then
        [ -f "$SRC/pyproject.toml" ] ||
            die "no checkout around $HERE: give --package birdnet-edge (or a wheel or path)"
        # Build from a copy: pip builds in the source tree, which would leave a root-owned
        # build/ in your checkout (and stale modules in it for the next upgrade).
        STAGE=$(mktemp -d "${TMPDIR:-/tmp}/birdnet-edge-src.XXXXXX")
        trap 'rm -rf -- "$STAGE"' EXIT
        tar -C "$SRC" --exclude=./.git --exclude=./build --exclude=./.venv --exclude=__pycache__ \
            --exclude="./.*_cache" --exclude="./*.egg-info" -cf - . |
            tar -C "$STAGE" -xf -
        spec=$STAGE
    fi
    venv=$(at "$VENV")
    want=$(python_version "$PYTHON") || die "$PYTHON does not run: give --python PATH"
    case $want in
        3.1[0-3]) ;;
        *) die "birdnet-edge needs Python 3.10 to 3.13, $PYTHON is $want: give --python PATH" ;;
    esac
    current=''
    if [ -x "$venv/bin/python" ]; then
        current=$(python_version "$venv/bin/python" 2>/dev/null) || current=''
    fi
    if [ "$current" = "$want" ]; then
        say "virtual environment $venv (Python $current) exists"
    else
        # New, or left behind by an OS upgrade that changed the Python version: rebuild it.
        say "creating the virtual environment $venv (Python $want)"
        "$PYTHON" -m venv --clear "$venv"
    fi
    say "installing ${PACKAGE:-$SRC} into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade \
        --upgrade-strategy only-if-needed "$spec"
}

install_model() {
    say "BirdNET model in $(at "$MODEL_DIR")"
    "$(at "$VENV")/bin/birdnet-edge" model install --model-dir "$(at "$MODEL_DIR")"
}

install_config() {
    say "files"
    example=$SRC/config.example.yaml
    if [ -f "$example" ]; then
        put 0644 "$example" "$(at "$PREFIX")/config.example.yaml"
    fi
    [ ! -f "$SRC/README.md" ] || put 0644 "$SRC/README.md" "$(at "$PREFIX")/README.md"
    conf=$(at "$CONF")
    if [ -e "$conf" ] || [ -L "$conf" ]; then
        say "  keeping your config $conf"
    else
        [ -f "$example" ] || die "$example is missing: run install.sh from a complete checkout"
        # 0640 root:birdnet-edge: the service reads it, other users do not.
        install -m 0640 -- "$example" "$conf"
        system chgrp "$SERVICE_USER" "$CONF"
        say "  wrote $conf from config.example.yaml"
    fi
}

check_config() {
    conf=$(at "$CONF")
    if ! "$(at "$VENV")/bin/birdnet-edge" check-config "$conf" >/dev/null; then
        say "WARNING: this version does not accept $conf (see above): fix it, then" \
            "sudo systemctl restart birdnet-edge"
        CONFIG_OK=0
    fi
    if [ -z "$ROOT" ] && ! runuser -u "$SERVICE_USER" -- test -r "$conf"; then
        say "WARNING: user $SERVICE_USER cannot read $conf:" \
            "sudo chgrp $SERVICE_USER $conf && sudo chmod 0640 $conf"
    fi
}

do_install() {
    say "installing birdnet-edge${ROOT:+ into $ROOT}"
    [ "$DO_VENV" = 0 ] || install_packages
    create_user
    install -d -m 0755 -- "$(at "$PREFIX")" "$(at "$CONF_DIR")" "$(at "$UNIT_DIR")"
    install -d -m 0750 -- "$(at "$STATE_DIR")"
    install -d -m 0755 -- "$(at "$MODEL_DIR")"
    install_config
    CONFIG_OK=1
    if [ "$DO_VENV" = 1 ]; then
        install_venv
        [ "$DO_MODEL" = 0 ] || install_model
        check_config
    fi
    # StateDirectory= would chown it at start too; do it now so the tree is right at once.
    system chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    say "systemd unit"
    put 0644 "$HERE/$SERVICE" "$(at "$UNIT_DIR")/$SERVICE"
    if [ -n "$ROOT" ]; then
        if have systemctl && systemctl --root="$ROOT" --quiet enable "$SERVICE" 2>/dev/null; then
            say "  enabled in $ROOT"
        else
            say "  would run: systemctl enable $SERVICE"
        fi
        say "  would run: systemctl daemon-reload"
        [ "$DO_START" = 0 ] || say "  would run: systemctl restart $SERVICE"
    else
        systemctl daemon-reload
        systemctl --quiet enable "$SERVICE"
        say "  enabled"
        if [ "$DO_START" = 1 ] && [ "$CONFIG_OK" = 1 ]; then
            # Forget earlier failed starts (the start limit), then restart without waiting:
            # with Type=notify, systemctl would wait until a microphone delivers.
            systemctl reset-failed "$SERVICE" 2>/dev/null || true
            systemctl restart --no-block "$SERVICE"
            say "  (re)started: check it with systemctl status birdnet-edge"
        fi
    fi
    next_steps
}

next_steps() {
    cat <<EOF

Done. Next:
  1. Pick the microphone: run
       sudo -u $SERVICE_USER $VENV/bin/birdnet-edge devices -c $CONF
     and set audio.device in $CONF to its name (or a part of it, e.g. "USB").
  2. Set station.latitude and station.longitude there, so only local species are reported.
  3. MQTT (optional): set mqtt.enabled, host and username there; put the password in
     $CONF_DIR/mqtt-password, readable by root only:
       sudo sh -c 'umask 077; cat > $CONF_DIR/mqtt-password'   (type it, then Ctrl-D)
  4. Apply config changes: sudo systemctl reload birdnet-edge
     (a new password needs: sudo systemctl restart birdnet-edge)
  Log: journalctl -u birdnet-edge -f      Status: systemctl status birdnet-edge
  Detections: $STATE_DIR/detections.db
EOF
}

do_uninstall() {
    say "removing the birdnet-edge service${ROOT:+ from $ROOT}"
    unit=$(at "$UNIT_DIR")/$SERVICE
    if [ -n "$ROOT" ]; then
        if have systemctl && [ -f "$unit" ]; then
            systemctl --root="$ROOT" --quiet disable "$SERVICE" 2>/dev/null || true
        fi
        say "  would run: systemctl disable --now $SERVICE"
    elif have systemctl; then
        systemctl disable --now "$SERVICE" 2>/dev/null || true
    fi
    rm -f -- "$unit"
    system systemctl daemon-reload
    system systemctl reset-failed "$SERVICE" 2>/dev/null || true
    rm -rf -- "$(at "$PREFIX")"
    say "  removed $(at "$UNIT_DIR")/$SERVICE and $(at "$PREFIX")"
    if [ "$PURGE" = 1 ]; then
        rm -rf -- "$(at "$CONF_DIR")" "$(at "$STATE_DIR")"
        say "  removed $(at "$CONF_DIR") and $(at "$STATE_DIR") (config, detections, models)"
        if [ -n "$ROOT" ] || getent passwd "$SERVICE_USER" >/dev/null; then
            system userdel "$SERVICE_USER"
        fi
    else
        say "  kept $(at "$CONF_DIR") and $(at "$STATE_DIR") (config, detections, models);" \
            "--uninstall --purge removes them"
    fi
}

if [ "$ACTION" = install ]; then
    do_install
else
    do_uninstall
fi
