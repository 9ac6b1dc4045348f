"""Loopback stand-ins for the two things a real EC2 first boot reaches that this machine
cannot offer: the instance metadata service (IMDSv2) and CloudFormation's resource signal.
Started by scripts/box on the host; the box reaches it through the variables scripts/box
puts in the box's environment (AWS_EC2_METADATA_SERVICE_ENDPOINT for the IMDS client of
the aws CLI, the Rust SDK and the UserData's curl; AWS_ENDPOINT_URL_CLOUDFORMATION for the
aws CLI's CloudFormation calls). Nothing here ever talks to 169.254.169.254 or AWS.

IMDS (paths under /latest/, IMDSv2 only, as the stack's launch template requires):
  PUT /latest/api/token                                  a session token (TTL header required)
  GET /latest/meta-data/instance-id                      the instance moto created for the stack
  GET /latest/meta-data/placement/region                 the stack's region
  GET /latest/meta-data/iam/security-credentials/        the instance role's name
  GET /latest/meta-data/iam/security-credentials/ROLE    credentials (moto accepts any)
  GET /latest/dynamic/instance-identity/document         instance id, region, account
  anything else: 404, a GET without a valid token: 401.

CloudFormation (POST /, the query protocol the aws CLI speaks): SignalResource is recorded
(one JSON line per signal in --signals) and answered as CloudFormation answers it; every
other action is passed to moto unchanged, so `aws cloudformation describe-stacks` in the box
still reaches the stack.

    python3 box_metadata.py --port P --moto URL --instance-id I --role R --region X \
        --account A --signals FILE
"""

import argparse
import datetime
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
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
    args = parser.parse_args()
    for name in ("instance_id", "role", "region", "account"):
        if not getattr(args, name).strip() or "/" in getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)!r} is not usable")
    tokens = set()

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
            tokens.add(token)
            # As IMDS does: the SDKs read the token's lifetime from this header.
            self.answer(200, token, headers=[("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            if not self.path.startswith("/latest/"):
                return self.answer(404, "not found")
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                # HttpTokens: required (IMDSv2 only), as in the stack's launch template.
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
    print(f"box metadata stand-in on http://127.0.0.1:{args.port} (instance {args.instance_id})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
