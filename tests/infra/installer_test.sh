#!/usr/bin/env bash
# Runs systemd/install-release.sh (what the instance runs for every release) in a scratch
# root with stand-ins for aws, systemctl, useradd and id on PATH, and checks what it leaves:
# the root-only secrets.env in the KEYID:SECRET form, the config with the stack's names, the
# binary and the unit, the systemctl sequence; then that a second run reinstalls without
# recreating the user, and that a bad secret stops the install before anything is replaced.
# Fleet mode (INTAKE_MODE=sqs in stack.env): the unit's drop-in with the daemon's [intake]
# environment and the scale-in watcher, enabled; a value a unit file cannot hold, or a
# missing one, refused before anything is replaced; back in http mode, both removed.
# Run by scripts/check-infra; exits non-zero on the first failed expectation.
set -euo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fake="$work/root" release="$work/release" bin="$work/bin" calls="$work/calls"
mkdir -p "$fake/etc/ec2-service" "$release" "$bin"
: > "$calls"

fail() { echo "installer: FAIL: $*" >&2; exit 1; }
mode() { stat -c %a "$1"; }

cat > "$fake/etc/ec2-service/stack.env" <<'EOF'
REGION=eu-west-1
SOURCE_BUCKET=image-pipeline-qa-source-123456789012-eu-west-1
OUTPUT_BUCKET=image-pipeline-qa-output-123456789012-eu-west-1
TABLE=pipe-RecordTable-ABC
PUBLIC_BASE_URL=https://d111111abcdef8.cloudfront.net/
STACK_NAME=pipe-qa
SIGNING_SECRET_ARN=arn:aws:secretsmanager:eu-west-1:123456789012:secret:image-pipeline-qa-signing-key-AbCdEf
ARTIFACT_BUCKET=artifacts
RELEASE_PARAMETER=/image-pipeline/qa/release
EOF
printf '#!/bin/sh\necho stand-in daemon\n' > "$release/ec2-service"
cp "$root_dir/systemd/config.toml" "$root_dir/systemd/ec2-service.service" \
    "$root_dir/systemd/ec2-service-lifecycle.sh" "$root_dir/systemd/ec2-service-lifecycle.service" "$release/"
single_env="$(cat "$fake/etc/ec2-service/stack.env")"

secret="Q7wWx2sV9kTz4mNc8bLr1pYd6hFg3jKa5eUo0iRt2yHq7vXn"
cat > "$bin/aws" <<EOF
#!/bin/sh
echo "aws \$*" >> "$calls"
case "\$*" in
    *"secretsmanager get-secret-value"*"--secret-id arn:aws:secretsmanager:"*) cat "$work/secret" ;;
    *) echo "unexpected aws call: \$*" >&2; exit 1 ;;
esac
EOF
cat > "$bin/systemctl" <<EOF
#!/bin/sh
echo "systemctl \$*" >> "$calls"
EOF
cat > "$bin/useradd" <<EOF
#!/bin/sh
echo "useradd \$*" >> "$calls"
touch "$work/user-exists"
EOF
cat > "$bin/id" <<EOF
#!/bin/sh
[ -e "$work/user-exists" ]
EOF
# Not root (a developer's machine): install and chown without changing owners.
if [ "$(/usr/bin/id -u)" -ne 0 ]; then
    printf '#!/bin/sh\n' > "$bin/chown"
    cat > "$bin/install" <<'EOF'
#!/bin/bash
args=()
while [ $# -gt 0 ]; do case "$1" in -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac; done
exec /usr/bin/install "${args[@]}"
EOF
fi
chmod +x "$bin"/*

run() {
    PATH="$bin:$PATH" EC2_SERVICE_INSTALL_ROOT="$fake" SIGNING_KEY_ID="$1" \
        bash "$root_dir/systemd/install-release.sh" "$release" > "$work/out" 2>&1
}

# First install.
printf '%s\n' "$secret" > "$work/secret"
run k7 || { cat "$work/out" >&2; fail "first install exited non-zero"; }
etc="$fake/etc/ec2-service"
[ "$(mode "$etc/secrets.env")" = 600 ] || fail "secrets.env mode $(mode "$etc/secrets.env")"
[ "$(cat "$etc/secrets.env")" = "EC2_SERVICE__SIGNING__KEYS=k7:$secret" ] || fail "secrets.env: $(cat "$etc/secrets.env")"
grep -q '^source_bucket = "image-pipeline-qa-source-123456789012-eu-west-1"$' "$etc/config.toml" || fail "config source_bucket"
grep -q '^table = "pipe-RecordTable-ABC"$' "$etc/config.toml" || fail "config table"
grep -q '^region = "eu-west-1"$' "$etc/config.toml" || fail "config region"
grep -q '^public_base_url = "https://d111111abcdef8.cloudfront.net/"$' "$etc/config.toml" || fail "config public_base_url"
grep -q '^stack = "pipe-qa"$' "$etc/config.toml" || fail "config metrics stack"
budget="$(sed -n 's/^memory_budget_bytes = \([0-9]*\)$/\1/p' "$etc/config.toml")"
ram="$(awk '/^MemTotal:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)"
if [ -z "$budget" ] || [ "$budget" -le $((ram / 2)) ] || [ "$budget" -ge $((ram * 2 / 3)) ]; then
    fail "memory budget $budget of $ram"
fi
! grep -v '^#' "$etc/config.toml" | grep -q '@[A-Z_]*@' || fail "a placeholder left in config.toml"
! grep -q "$secret" "$etc/config.toml" || fail "the secret in config.toml"
python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$etc/config.toml" || fail "config.toml is not valid TOML"
[ "$(mode "$etc/config.toml")" = 644 ] || fail "config.toml mode"
cmp -s "$release/ec2-service" "$fake/usr/local/bin/ec2-service" || fail "binary not installed"
[ "$(mode "$fake/usr/local/bin/ec2-service")" = 755 ] || fail "binary mode"
cmp -s "$release/ec2-service.service" "$fake/etc/systemd/system/ec2-service.service" || fail "unit not installed"
grep -q '^useradd --system ' "$calls" || fail "no system user created"
expected="systemctl daemon-reload
systemctl enable ec2-service.service
systemctl restart ec2-service.service"
[ "$(grep -E '^systemctl (daemon-reload|enable|restart)' "$calls")" = "$expected" ] || fail "systemctl calls: $(grep systemctl "$calls")"
echo "installer: first install: secrets.env 0600 KEYID:SECRET, config filled, binary, unit, user, restart"

# A second run (a new release): same result, no second user.
: > "$calls"
printf '#!/bin/sh\necho stand-in daemon 2\n' > "$release/ec2-service"
run k8 || { cat "$work/out" >&2; fail "reinstall exited non-zero"; }
cmp -s "$release/ec2-service" "$fake/usr/local/bin/ec2-service" || fail "new binary not installed"
[ "$(cat "$etc/secrets.env")" = "EC2_SERVICE__SIGNING__KEYS=k8:$secret" ] || fail "secrets.env after reinstall"
! grep -q '^useradd' "$calls" || fail "user created twice"
echo "installer: reinstall: new binary and key id, user kept"

# A secret too short: refused before anything is replaced.
printf 'short\n' > "$work/secret"
printf '#!/bin/sh\necho stand-in daemon 3\n' > "$release/ec2-service"
if run k9; then fail "accepted a 5-character secret"; fi
grep -q "at least 32 characters" "$work/out" || fail "no reason given: $(cat "$work/out")"
[ "$(cat "$etc/secrets.env")" = "EC2_SERVICE__SIGNING__KEYS=k8:$secret" ] || fail "secrets.env replaced by a refused install"
grep -q 'stand-in daemon 2' "$fake/usr/local/bin/ec2-service" || fail "binary replaced by a refused install"
echo "installer: a short secret is refused, nothing replaced"

# Fleet mode: the same release on an instance of the Auto Scaling group.
printf '%s\n' "$secret" > "$work/secret"
queue=https://sqs.eu-west-1.amazonaws.com/123456789012/pipe-JobQueue-AbC
fleet_env() { # stack.env in fleet mode, with KEY=VALUE overrides
    printf '%s\n' "$single_env" INTAKE_MODE=sqs "QUEUE_URL=$queue" SOURCE_PREFIX=uploads/ \
        SOURCE_SUFFIXES=.jpg,.jpeg,.png,.webp,.heic VISIBILITY_TIMEOUT_SECS=120 \
        FLEET_GROUP=image-pipeline-qa-daemons LIFECYCLE_HOOK=drain-before-terminate "$@" \
        > "$fake/etc/ec2-service/stack.env"
}
fleet_env
: > "$calls"
run k8 || { cat "$work/out" >&2; fail "fleet install exited non-zero"; }
dropin="$fake/etc/systemd/system/ec2-service.service.d/intake.conf"
if [ ! -f "$dropin" ] || [ "$(mode "$dropin")" != 644 ]; then fail "no drop-in, or its mode: $(ls -l "$dropin" 2>&1)"; fi
expected="[Service]
Environment=EC2_SERVICE__INTAKE__MODE=sqs
Environment=EC2_SERVICE__INTAKE__QUEUE_URL=$queue
Environment=EC2_SERVICE__INTAKE__VISIBILITY_TIMEOUT_SECS=120
Environment=EC2_SERVICE__INTAKE__SOURCE_PREFIX=uploads/
Environment=EC2_SERVICE__INTAKE__SOURCE_SUFFIXES=.jpg,.jpeg,.png,.webp,.heic"
[ "$(grep -v '^#' "$dropin")" = "$expected" ] || fail "drop-in: $(cat "$dropin")"
cmp -s "$release/ec2-service-lifecycle.sh" "$fake/usr/local/sbin/ec2-service-lifecycle" || fail "watcher not installed"
[ "$(mode "$fake/usr/local/sbin/ec2-service-lifecycle")" = 755 ] || fail "watcher mode"
cmp -s "$release/ec2-service-lifecycle.service" "$fake/etc/systemd/system/ec2-service-lifecycle.service" ||
    fail "watcher unit not installed"
expected="systemctl daemon-reload
systemctl enable ec2-service.service
systemctl restart ec2-service.service
systemctl enable ec2-service-lifecycle.service
systemctl restart ec2-service-lifecycle.service"
[ "$(grep -E '^systemctl (daemon-reload|enable|restart)' "$calls")" = "$expected" ] || fail "fleet systemctl calls: $(grep systemctl "$calls")"
! grep -q '^\[intake\]' "$etc/config.toml" || fail "config.toml has an [intake] section: the drop-in owns it"
echo "installer: fleet install: drop-in with the intake environment, watcher installed and enabled"

# A value a unit file cannot hold, or a missing one: refused, nothing replaced.
printf '#!/bin/sh\necho stand-in daemon 4\n' > "$release/ec2-service"
for bad in "SOURCE_PREFIX='my uploads/'" "QUEUE_URL=https://q/%n" "FLEET_GROUP="; do
    fleet_env "$bad"
    if run k8; then fail "accepted $bad"; fi
    grep -q "${bad%%=*}" "$work/out" || fail "no reason given for $bad: $(cat "$work/out")"
    grep -q 'stand-in daemon 3' "$fake/usr/local/bin/ec2-service" || fail "binary replaced by a refused install ($bad)"
    grep -q "QUEUE_URL=$queue$" "$dropin" || fail "drop-in replaced by a refused install ($bad)"
done
echo "installer: a value with a space or a %, or a missing FLEET_GROUP, is refused, nothing replaced"

# Back to one instance (http): drop-in and watcher gone.
printf '%s\n' "$single_env" > "$fake/etc/ec2-service/stack.env"
: > "$calls"
run k8 || { cat "$work/out" >&2; fail "http reinstall exited non-zero"; }
for left in "$dropin" "$fake/usr/local/sbin/ec2-service-lifecycle" "$fake/etc/systemd/system/ec2-service-lifecycle.service"; do
    [ ! -e "$left" ] || fail "$left left in http mode"
done
grep -q '^systemctl disable --now ec2-service-lifecycle.service$' "$calls" || fail "watcher not disabled"
echo "installer: back in http mode: drop-in and watcher removed"
echo "installer: 6 scenarios passed (install, reinstall, refused secret, fleet install, refused fleet values, back to http)"
