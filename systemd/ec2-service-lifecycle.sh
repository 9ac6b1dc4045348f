#!/usr/bin/env bash
# ec2-service-lifecycle: the scale-in watcher of a fleet instance (DeploymentMode fleet).
# Installed by install-release.sh as /usr/local/sbin/ec2-service-lifecycle and run by
# ec2-service-lifecycle.service, as root.
#
# Polls the instance metadata service (IMDSv2) for autoscaling/target-lifecycle-state. When
# the Auto Scaling group is about to terminate this instance (the state turns to
# "Terminated"; the group's termination lifecycle hook holds the instance in
# Terminating:Wait meanwhile), it stops ec2-service, which drains: it stops receiving, gives
# the jobs in flight up to [server] drain_secs, and hands every other message back to the
# queue at once. Then it completes the lifecycle action (CONTINUE), and the group terminates
# the instance. If this script never gets there, the hook's heartbeat timeout ends the wait
# with its default result (CONTINUE), and whatever the daemon still held comes back to the
# queue after its visibility timeout: slower, nothing lost.
#
# Configuration: /etc/ec2-service/stack.env (REGION, FLEET_GROUP, LIFECYCLE_HOOK), written by
# the stack's UserData. The environment may set:
#   AWS_EC2_METADATA_SERVICE_ENDPOINT   where IMDS is (the variable the aws CLI and the SDKs
#                                       read; default http://169.254.169.254)
#   LIFECYCLE_POLL_SECS                 seconds between two reads of the state (5)
#   LIFECYCLE_TOKEN_TTL_SECS            lifetime asked for each IMDSv2 token (300)
#   EC2_SERVICE_INSTALL_ROOT            a root to find etc/ec2-service/stack.env under (tests)
# Exit status: 0 once the lifecycle action is completed (or the instance is leaving the
# group some other way), 1 when it cannot complete it (systemd starts it again), 64 for a
# bad configuration.
set -uo pipefail

stack_env="${EC2_SERVICE_INSTALL_ROOT:-}/etc/ec2-service/stack.env"
poll="${LIFECYCLE_POLL_SECS:-5}"
token_ttl="${LIFECYCLE_TOKEN_TTL_SECS:-300}"
imds="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
imds="${imds%/}"

log() { echo "ec2-service-lifecycle: $*"; }
die() { echo "ec2-service-lifecycle: $*" >&2; exit "${2:-64}"; }

[ -r "$stack_env" ] || die "cannot read $stack_env"
# shellcheck source=/dev/null
. "$stack_env"
for name in REGION FLEET_GROUP LIFECYCLE_HOOK; do
    [ -n "${!name:-}" ] || die "$name is missing from $stack_env (not a fleet instance?)"
done
[[ "$poll" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "LIFECYCLE_POLL_SECS must be a number of seconds, not $poll"
if ! [[ "$token_ttl" =~ ^[0-9]+$ ]] || [ "$token_ttl" -lt 1 ] || [ "$token_ttl" -gt 21600 ]; then
    die "LIFECYCLE_TOKEN_TTL_SECS must be 1 to 21600, as IMDS allows, not $token_ttl"
fi

# An IMDSv2 session token, renewed before it expires (at two thirds of its lifetime). These
# functions set globals (never called in a subshell, so the token is kept between calls).
token="" token_renew_at=0
fresh_token() {
    if [ -z "$token" ] || [ "$SECONDS" -ge "$token_renew_at" ]; then
        token="$(curl -fsS --max-time 2 -X PUT "$imds/latest/api/token" \
            -H "X-aws-ec2-metadata-token-ttl-seconds: $token_ttl")" || { token=""; return 1; }
        token_renew_at=$((SECONDS + token_ttl * 2 / 3))
    fi
}

# metadata PATH: sets item to the metadata item under /latest/PATH. Status 0; 2 when IMDS
# has no such item (404: the group has not published the state yet); 1 when IMDS cannot be
# read (the next call asks for a new token if IMDS refused this one).
item=""
metadata() {
    local out status
    item=""
    fresh_token || return 1
    out="$(curl -sS --max-time 2 -w '\n%{http_code}' -H "X-aws-ec2-metadata-token: $token" \
        "$imds/latest/$1")" || return 1
    status="${out##*$'\n'}"
    case "$status" in
        200) item="${out%$'\n'*}" ;;
        401) token=""; return 1 ;;
        404) return 2 ;;
        *) return 1 ;;
    esac
}

until metadata meta-data/instance-id; do
    sleep "$poll"
done
instance_id="$item"
log "watching instance $instance_id of $FLEET_GROUP (hook $LIFECYCLE_HOOK, every ${poll}s)"

previous=""
while true; do
    if metadata meta-data/autoscaling/target-lifecycle-state; then
        if [ "$item" != "$previous" ]; then
            log "target lifecycle state: $item"
            previous="$item"
        fi
        case "$item" in
            Terminated) break ;;
            Detached) log "the instance is being detached from $FLEET_GROUP: nothing to do"; exit 0 ;;
        esac
    fi
    sleep "$poll"
done

# Drain: systemctl stop returns once the daemon has exited (TimeoutStopSec bounds it); its
# SIGTERM handling hands back every message it has not finished.
started=$SECONDS
log "the group is terminating this instance: stopping ec2-service (drain, then hand-back)"
systemctl stop ec2-service.service || log "systemctl stop ec2-service failed (status $?); completing anyway"
log "ec2-service stopped after $((SECONDS - started)) s"

for attempt in 1 2 3 4 5; do
    if aws autoscaling complete-lifecycle-action --region "$REGION" \
        --auto-scaling-group-name "$FLEET_GROUP" --lifecycle-hook-name "$LIFECYCLE_HOOK" \
        --instance-id "$instance_id" --lifecycle-action-result CONTINUE; then
        log "lifecycle action completed (CONTINUE): the group terminates $instance_id"
        exit 0
    fi
    log "complete-lifecycle-action failed (attempt $attempt of 5)"
    sleep "$attempt"
done
die "could not complete the lifecycle action; the hook's heartbeat timeout will" 1
