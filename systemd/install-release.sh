#!/usr/bin/env bash
# Installs one ec2-service release on the instance. Run as root by ec2-service-install (the
# command that the stack's UserData writes), which has already downloaded the release and
# checked it against the stack's SHA-256; do not run it by hand on an unchecked directory.
#
#   install-release.sh RELEASE_DIR
#
# RELEASE_DIR holds ec2-service, config.toml, ec2-service.service, ec2-service-lifecycle.sh
# and ec2-service-lifecycle.service (this script's siblings in the release). The environment
# gives SIGNING_KEY_ID (from the stack's release parameter); /etc/ec2-service/stack.env gives
# REGION, SOURCE_BUCKET, OUTPUT_BUCKET, TABLE, SIGNING_SECRET_ARN, PUBLIC_BASE_URL, STACK_NAME and
# INTAKE_MODE: "http" (or absent: one instance, fed by the forwarder) or "sqs" (fleet mode,
# with QUEUE_URL, SOURCE_PREFIX, SOURCE_SUFFIXES, VISIBILITY_TIMEOUT_SECS, FLEET_GROUP and
# LIFECYCLE_HOOK). In sqs mode it also writes the unit's drop-in with the daemon's [intake]
# settings (EC2_SERVICE__INTAKE__*) and installs the scale-in watcher
# (ec2-service-lifecycle); in http mode it removes both if a previous install left them.
# Idempotent: running it again reinstalls and restarts the daemon, which drains first
# (systemctl restart waits for the old process to stop, then for READY=1).
#
# EC2_SERVICE_INSTALL_ROOT installs under another root (tests only: commands such as
# systemctl, useradd and aws are then whatever PATH provides).
set -euo pipefail

release="${1:?usage: install-release.sh RELEASE_DIR}"
root="${EC2_SERVICE_INSTALL_ROOT:-}"
etc="$root/etc/ec2-service"
user=ec2-service
scratch=/var/lib/ec2-service

log() { echo "install-release: $*"; }
die() { echo "install-release: $*" >&2; exit 1; }

[ -n "${SIGNING_KEY_ID:-}" ] || die "SIGNING_KEY_ID is not set"
# shellcheck source=/dev/null
. "$etc/stack.env"
for name in REGION SOURCE_BUCKET OUTPUT_BUCKET TABLE SIGNING_SECRET_ARN PUBLIC_BASE_URL STACK_NAME; do
    [ -n "${!name:-}" ] || die "$name is missing from $etc/stack.env"
done
intake_mode="${INTAKE_MODE:-http}"
case "$intake_mode" in
    http) ;;
    sqs)
        for name in QUEUE_URL SOURCE_PREFIX SOURCE_SUFFIXES VISIBILITY_TIMEOUT_SECS FLEET_GROUP LIFECYCLE_HOOK; do
            [ -n "${!name:-}" ] || die "$name is missing from $etc/stack.env (INTAKE_MODE=sqs)"
            # Written into a systemd drop-in below: no quotes, no specifiers (%), no spaces.
            [[ "${!name}" =~ ^[A-Za-z0-9:/._,!()-]+$ ]] ||
                die "$name in $etc/stack.env has characters a unit file cannot take: ${!name}"
        done
        ;;
    *) die "INTAKE_MODE in $etc/stack.env must be http or sqs, not $intake_mode" ;;
esac
files=(ec2-service config.toml ec2-service.service)
[ "$intake_mode" = http ] || files+=(ec2-service-lifecycle.sh ec2-service-lifecycle.service)
for file in "${files[@]}"; do
    [ -f "$release/$file" ] || die "the release has no $file"
done

# The service user: no login, no home but the scratch directory.
if ! id -u "$user" >/dev/null 2>&1; then
    log "creating system user $user"
    useradd --system --user-group --no-create-home --home-dir "$scratch" \
        --shell /sbin/nologin "$user"
fi

# The signing key, from the secret the forwarder also reads, into a root-only environment
# file that systemd reads before it drops privileges. Never in the unit or the config.
secret="$(aws secretsmanager get-secret-value --region "$REGION" \
    --secret-id "$SIGNING_SECRET_ARN" --query SecretString --output text)"
if [ "${#secret}" -lt 32 ] || ! [[ "$secret" =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
    die "the signing secret must be at least 32 characters of [A-Za-z0-9._~+/=-]"
fi
install -d -m 0755 -o root -g root "$etc"
(
    umask 077
    printf 'EC2_SERVICE__SIGNING__KEYS=%s:%s\n' "$SIGNING_KEY_ID" "$secret" > "$etc/secrets.env.new"
)
chown root:root "$etc/secrets.env.new"
chmod 0600 "$etc/secrets.env.new"
mv -f "$etc/secrets.env.new" "$etc/secrets.env"
unset secret

# The config, with the stack's names in place of the placeholders, and a render memory
# budget of 60% of this machine's RAM.
mem_kib="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
[[ "$mem_kib" =~ ^[0-9]+$ ]] || die "cannot read MemTotal from /proc/meminfo"
memory_budget_bytes=$((mem_kib * 1024 * 60 / 100))
sed -e "s|@REGION@|$REGION|g" \
    -e "s|@MEMORY_BUDGET_BYTES@|$memory_budget_bytes|g" \
    -e "s|@SOURCE_BUCKET@|$SOURCE_BUCKET|g" \
    -e "s|@OUTPUT_BUCKET@|$OUTPUT_BUCKET|g" \
    -e "s|@TABLE@|$TABLE|g" \
    -e "s|@PUBLIC_BASE_URL@|$PUBLIC_BASE_URL|g" \
    -e "s|@STACK_NAME@|$STACK_NAME|g" \
    "$release/config.toml" > "$etc/config.toml.new"
left="$(grep -v '^[[:space:]]*#' "$etc/config.toml.new" | grep -o '@[A-Z_]*@' | head -n1 || true)"
[ -z "$left" ] || die "config.toml still has a placeholder: $left"
chmod 0644 "$etc/config.toml.new"
mv -f "$etc/config.toml.new" "$etc/config.toml"

# The binary (renamed into place: a running daemon keeps its old inode until it restarts)
# and the unit.
install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system"
install -m 0755 -o root -g root "$release/ec2-service" "$root/usr/local/bin/ec2-service.new"
mv -f "$root/usr/local/bin/ec2-service.new" "$root/usr/local/bin/ec2-service"
install -m 0644 -o root -g root "$release/ec2-service.service" \
    "$root/etc/systemd/system/ec2-service.service"

# Fleet mode: the daemon reads the queue itself ([intake] from the unit's environment, so it
# holds whatever config.toml says), and the watcher drains it before a scale-in.
dropin="$root/etc/systemd/system/ec2-service.service.d"
watcher="$root/usr/local/sbin/ec2-service-lifecycle"
watcher_unit="$root/etc/systemd/system/ec2-service-lifecycle.service"
if [ "$intake_mode" = sqs ]; then
    install -d -m 0755 -o root -g root "$dropin" "$root/usr/local/sbin"
    {
        echo "# Written by install-release.sh from /etc/ec2-service/stack.env (fleet mode): the daemon"
        echo "# long-polls the stack's queue itself. ec2-service-install rewrites this file."
        echo "[Service]"
        echo "Environment=EC2_SERVICE__INTAKE__MODE=sqs"
        echo "Environment=EC2_SERVICE__INTAKE__QUEUE_URL=$QUEUE_URL"
        echo "Environment=EC2_SERVICE__INTAKE__VISIBILITY_TIMEOUT_SECS=$VISIBILITY_TIMEOUT_SECS"
        echo "Environment=EC2_SERVICE__INTAKE__SOURCE_PREFIX=$SOURCE_PREFIX"
        echo "Environment=EC2_SERVICE__INTAKE__SOURCE_SUFFIXES=$SOURCE_SUFFIXES"
    } > "$dropin/intake.conf.new"
    chmod 0644 "$dropin/intake.conf.new"
    mv -f "$dropin/intake.conf.new" "$dropin/intake.conf"
    install -m 0755 -o root -g root "$release/ec2-service-lifecycle.sh" "$watcher.new"
    mv -f "$watcher.new" "$watcher"
    install -m 0644 -o root -g root "$release/ec2-service-lifecycle.service" "$watcher_unit"
else
    rm -f "$dropin/intake.conf"
    if [ -d "$dropin" ]; then rmdir "$dropin" 2>/dev/null || true; fi
    if [ -e "$watcher_unit" ]; then
        systemctl disable --now ec2-service-lifecycle.service || true
        rm -f "$watcher_unit" "$watcher"
    fi
fi

log "starting ec2-service (intake: $intake_mode)"
systemctl daemon-reload
systemctl enable ec2-service.service
# Type=notify: this returns once the new daemon has sent READY=1, and fails if it does not.
systemctl restart ec2-service.service
systemctl --no-pager --lines=5 status ec2-service.service || true
if [ "$intake_mode" = sqs ]; then
    systemctl enable ec2-service-lifecycle.service
    systemctl restart ec2-service-lifecycle.service
fi
log "done"
