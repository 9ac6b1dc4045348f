"""Loopback stand-ins for what a real EC2 instance reaches that this machine cannot offer:
the instance metadata service (IMDSv2), CloudFormation's resource signal, and the Auto
Scaling lifecycle action that moto does not implement. Started by scripts/box on the host
(and by tests/infra/moto_deploy.py for the fleet's scale-in watcher); clients reach it
through AWS_EC2_METADATA_SERVICE_ENDPOINT (the IMDS client of the aws CLI, the Rust SDK and
the UserData's curl), AWS_ENDPOINT_URL_CLOUDFORMATION and AWS_ENDPOINT_URL_AUTO_SCALING (the
aws CLI's calls). Nothing here ever talks to 169.254.169.254 or AWS.

IMDS (paths under /latest/, IMDSv2 only, as the stack's launch template requires):
  PUT /latest/api/token                                  a session token for the TTL asked
                                                         (1-21600 s; a GET with it after that
                                                         is refused, as IMDS does)
  GET /latest/meta-data/instance-id                      the instance moto created for the stack
  GET /latest/meta-data/placement/region                 the stack's region
  GET /latest/meta-data/iam/security-credentials/        the instance role's name
  GET /latest/meta-data/iam/security-credentials/ROLE    credentials (moto accepts any)
  GET /latest/meta-data/autoscaling/target-lifecycle-state
                                                         the content of --lifecycle-state
                                                         (InService, Terminated, ...); 404
                                                         while that file does not exist
  GET /latest/dynamic/instance-identity/document         instance id, region, account
  anything else: 404, a GET without a valid token: 401.

POST / (the query protocol the aws CLI speaks):
  CloudFormation SignalResource: recorded (one JSON line per signal in --signals) and answered
    as CloudFormation answers it.
  Auto Scaling CompleteLifecycleAction (moto 5.2.5 has lifecycle hooks but not this action):
    checked as Auto Scaling checks it, against moto's state: the hook exists on the group for
    EC2_INSTANCE_TERMINATING, the instance is in the group, and it is waiting (the state
    served is Terminated, this stand-in's Terminating:Wait); the result is CONTINUE or
    ABANDON. Then recorded (one JSON line in --lifecycle-actions) and answered; otherwise a
    ValidationError, as Auto Scaling answers it.
  Every other action is passed to moto unchanged (`aws cloudformation describe-stacks` in the
  box still reaches the stack).

    python3 box_metadata.py --port P --moto URL --instance-id I --role R --region X \
        --account A --signals FILE [--lifecycle-state FILE] [--lifecycle-actions FILE]
"""

import argparse
import datetime
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--signals", required=True)
    parser.add_argument("--lifecycle-state", help="file whose content is the target lifecycle state")
    parser.add_argument("--lifecycle-actions", help="file the completed lifecycle actions are recorded in")
    args = parser.parse_args()
    for name in ("instance_id", "role", "region", "account"):
        if not getattr(args, name).strip() or "/" in getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)!r} is not usable")
    tokens = {}  # token -> when it expires (time.monotonic())

    def lifecycle_state():
        if not args.lifecycle_state or not os.path.exists(args.lifecycle_state):
            return None
        with open(args.lifecycle_state) as f:
            return f.read().strip()

    def moto_query(headers, form):
        """A query-protocol call to moto, signed as the client's request was (moto reads the
        service from the Authorization header and checks no signature)."""
        body = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(args.moto.rstrip("/") + "/", data=body, method="POST",
                                         headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return ElementTree.fromstring(response.read())

    def texts(root, tag):
        return [e.text or "" for e in root.iter() if e.tag.rsplit("}", 1)[-1] == tag]

    def lifecycle_refusal(form, headers):
        """Why Auto Scaling would refuse this CompleteLifecycleAction, or None."""
        group = form.get("AutoScalingGroupName", "")
        hook = form.get("LifecycleHookName", "")
        instance = form.get("InstanceId", "")
        if form.get("LifecycleActionResult") not in ("CONTINUE", "ABANDON"):
            return f"LifecycleActionResult must be CONTINUE or ABANDON, not {form.get('LifecycleActionResult')!r}"
        if not instance and not form.get("LifecycleActionToken"):
            return "Either InstanceId or LifecycleActionToken must be given"
        hooks = moto_query(headers, {"Action": "DescribeLifecycleHooks", "Version": "2011-01-01",
                                     "AutoScalingGroupName": group, "LifecycleHookNames.member.1": hook})
        if hook not in texts(hooks, "LifecycleHookName"):
            return f"No Lifecycle Hook found with name {hook} for group {group}"
        if "autoscaling:EC2_INSTANCE_TERMINATING" not in texts(hooks, "LifecycleTransition"):
            return f"Lifecycle hook {hook} is not a termination hook"
        members = moto_query(headers, {"Action": "DescribeAutoScalingInstances", "Version": "2011-01-01",
                                       "InstanceIds.member.1": instance})
        if group not in texts(members, "AutoScalingGroupName"):
            return f"No active Lifecycle Action found with instance ID {instance}"
        if instance == args.instance_id and lifecycle_state() != "Terminated":
            return f"No active Lifecycle Action found with instance ID {instance}"
        return None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *values):
            print(f"{self.command} {self.path} -> {fmt % values}", flush=True)

        def answer(self, status, body, content_type="text/plain", headers=()):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/latest/api/token":
                return self.answer(404, "not found")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds") or ""
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.answer(400, "X-aws-ec2-metadata-token-ttl-seconds must be 1 to 21600")
            token = secrets.token_urlsafe(32)
            tokens[token] = time.monotonic() + int(ttl)
            # As IMDS does: the SDKs read the token's lifetime from this header.
            self.answer(200, token, headers=[("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            if not self.path.startswith("/latest/"):
                return self.answer(404, "not found")
            if tokens.get(self.headers.get("X-aws-ec2-metadata-token"), 0) < time.monotonic():
                # HttpTokens: required (IMDSv2 only), as in the stack's launch template; an
                # expired token is refused too.
                return self.answer(401, "unauthorized")
            now = datetime.datetime.now(datetime.timezone.utc)
            documents = {
                "/latest/meta-data/instance-id": args.instance_id,
                "/latest/meta-data/placement/region": args.region,
                "/latest/meta-data/iam/security-credentials/": args.role,
                f"/latest/meta-data/iam/security-credentials/{args.role}": json.dumps({
                    "Code": "Success",
                    "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIABOXINSTANCEROLE0",
                    "SecretAccessKey": "box-instance-role-secret",
                    "Token": "box-instance-role-session",
                    "Expiration": (now + datetime.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }),
                "/latest/dynamic/instance-identity/document": json.dumps({
                    "instanceId": args.instance_id,
                    "region": args.region,
                    "accountId": args.account,
                    "availabilityZone": f"{args.region}a",
                    "architecture": "x86_64",
                }),
            }
            state = lifecycle_state()
            if state is not None:
                documents["/latest/meta-data/autoscaling/target-lifecycle-state"] = state
            path = self.path.split("?", 1)[0]
            if path == "/latest/meta-data/iam/security-credentials":
                path += "/"
            if path not in documents:
                return self.answer(404, "not found")
            body = documents[path]
            self.answer(200, body, "application/json" if body.startswith("{") else "text/plain")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            form = urllib.parse.parse_qs(body.decode(errors="replace"))
            if form.get("Action") == ["SignalResource"]:
                signal = {key: values[0] for key, values in form.items() if key != "Action"}
                signal["ReceivedAt"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
                with open(args.signals, "a") as f:
                    f.write(json.dumps(signal) + "\n")
                return self.answer(200, (
                    '<SignalResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                    "<ResponseMetadata><RequestId>box-signal</RequestId></ResponseMetadata>"
                    "</SignalResourceResponse>"), "text/xml")
            if form.get("Action") == ["CompleteLifecycleAction"] and args.lifecycle_actions:
                action = {key: values[0] for key, values in form.items() if key not in ("Action", "Version")}
                headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
                refusal = lifecycle_refusal(action, headers)
                if refusal:
                    print(f"CompleteLifecycleAction refused: {refusal}", flush=True)
                    return self.answer(400, (
                        '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
                        f"<Error><Type>Sender</Type><Code>ValidationError</Code><Message>{refusal}</Message></Error>"
                        "<RequestId>box-lifecycle</RequestId></ErrorResponse>"), "text/xml")
                action["ReceivedAt"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
                with open(args.lifecycle_actions, "a") as f:
                    f.write(json.dumps(action) + "\n")
                return self.answer(200, (
                    '<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
                    "<CompleteLifecycleActionResult/><ResponseMetadata><RequestId>box-lifecycle</RequestId>"
                    "</ResponseMetadata></CompleteLifecycleActionResponse>"), "text/xml")
            # Every other CloudFormation call goes to moto as it came.
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(args.moto.rstrip("/") + self.path, data=body, headers=headers,
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, data, kind = response.status, response.read(), response.headers.get("Content-Type")
            except urllib.error.HTTPError as e:
                status, data, kind = e.code, e.read(), e.headers.get("Content-Type")
            self.answer(status, data, kind or "text/xml")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    # --port 0: a free port, the one printed here.
    print(f"box metadata stand-in on http://127.0.0.1:{server.server_address[1]} (instance {args.instance_id})",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
