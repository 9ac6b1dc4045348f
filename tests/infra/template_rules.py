"""Static rules of this project for cloudformation/template.yaml and systemd/, beyond what
cfn-lint and checkov know: the properties moto does not apply (so the deploy test cannot see
them), the few IAM statements allowed a "*" resource (which is why checkov's CKV_AWS_111 is
skipped on the roles), the wiring between the template, the unit and the config, and the
syntax of the UserData script. Run by scripts/check-infra.

    .venv/bin/python tests/infra/template_rules.py
"""

import configparser
import os
import re
import subprocess
import sys
import tomllib

from cfnlint.decode import decode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEMPLATE = os.path.join(ROOT, "cloudformation", "template.yaml")

# The only Allow statements whose resource may be "*", and the actions they may hold.
STAR_RESOURCE_ALLOWED = {
    # Lambda's ENIs in the VPC (the AWSLambdaVPCAccessExecutionRole set).
    "VpcNetworkInterfaces": {
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    },
    # The SSM agent (Session Manager, Run Command).
    "SessionManagerAgent": {
        "ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations", "ssm:UpdateInstanceAssociationStatus",
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
        "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
        "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
    },
}

failures = []
rules_run = 0


def rule(name):
    def wrap(fn):
        global rules_run
        rules_run += 1
        try:
            fn()
            print(f"  ok    {name}")
        except AssertionError as e:
            print(f"  FAIL  {name}: {e}")
            failures.append(name)
        return fn
    return wrap


template, matches = decode(TEMPLATE)
if matches:
    sys.exit(f"cannot decode {TEMPLATE}: {matches}")
resources = template["Resources"]


def of_type(kind):
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(policy_document):
    return as_list(policy_document["Statement"])


def if_branches(value):
    """Both branches of an Fn::If (or the value itself)."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [b for branch in value["Fn::If"][1:] for b in if_branches(branch)]
    return [value]


@rule("every checkov skip has a written reason")
def _():
    for name, r in resources.items():
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), f"{name}: skip id {skip.get('id')}"
            assert len(skip.get("comment", "").strip()) >= 40, f"{name}: {skip['id']} has no real reason"


@rule('IAM: "*" resources only for the ENI and SSM-agent actions; no wildcard actions')
def _():
    for name, role in of_type("AWS::IAM::Role").items():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props, f"{name} attaches managed policies"
        for policy in props["Policies"]:
            for branch in statements(policy["PolicyDocument"]):
                for st in if_branches(branch):
                    actions = set(as_list(st["Action"]))
                    assert all("*" not in a for a in actions), f"{name}/{st.get('Sid')}: wildcard action {actions}"
                    if "*" in as_list(st["Resource"]):
                        allowed = STAR_RESOURCE_ALLOWED.get(st.get("Sid"))
                        assert allowed is not None, f"{name}/{st.get('Sid')}: Resource '*'"
                        assert actions <= allowed, f"{name}/{st['Sid']}: {sorted(actions - allowed)} on '*'"


@rule("buckets: private, encrypted, versioned, multipart cleanup, TLS-only policy")
def _():
    buckets = of_type("AWS::S3::Bucket")
    assert set(buckets) == {"SourceBucket", "OutputBucket", "WebBucket"}, sorted(buckets)
    policies = {p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
                for p in of_type("AWS::S3::BucketPolicy").values()}
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        block = props["PublicAccessBlockConfiguration"]
        assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                                "RestrictPublicBuckets")), f"{name}: {block}"
        assert props["VersioningConfiguration"]["Status"] == "Enabled", name
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert any("AbortIncompleteMultipartUpload" in r for r in props["LifecycleConfiguration"]["Rules"]), name
        assert props["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced", name
        tls = [s for s in statements(policies[name]) if s["Effect"] == "Deny"
               and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        assert tls, f"{name}: no TLS-only statement"
    assert resources["SourceBucket"].get("DeletionPolicy") == "Retain", "source bucket not retained"
    assert resources["RecordTable"].get("DeletionPolicy") == "Retain", "table not retained"


@rule("edges: origins read only by the distribution over HTTPS; every API route behind the JWT authorizer")
def _():
    distribution_arn = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"
    policies = {p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
                for p in of_type("AWS::S3::BucketPolicy").values()}
    for bucket, resource in (("OutputBucket", "${OutputBucket.Arn}/variants/*"), ("WebBucket", "${WebBucket.Arn}/*")):
        allows = [s for s in statements(policies[bucket]) if s["Effect"] == "Allow"]
        assert len(allows) == 1, f"{bucket}: {len(allows)} Allow statements"
        st = allows[0]
        assert st["Principal"] == {"Service": "cloudfront.amazonaws.com"}, f"{bucket}: {st['Principal']}"
        assert as_list(st["Action"]) == ["s3:GetObject"], f"{bucket}: {st['Action']}"
        assert st["Resource"] == {"Fn::Sub": resource}, f"{bucket}: {st['Resource']}"
        assert st["Condition"] == {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": distribution_arn}}}, f"{bucket}: {st['Condition']}"
    assert "Allow" not in {s["Effect"] for s in statements(policies["SourceBucket"])}, "the source bucket admits someone"
    config = resources["Distribution"]["Properties"]["DistributionConfig"]
    for origin in config["Origins"]:
        assert origin.get("OriginAccessControlId") == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}, origin["Id"]
        assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}, origin["Id"]
    oac = resources["OriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["SigningBehavior"], oac["SigningProtocol"], oac["OriginAccessControlOriginType"]) == ("always", "sigv4", "s3"), oac
    behaviours = [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]
    assert all(b["ViewerProtocolPolicy"] in ("redirect-to-https", "https-only") for b in behaviours), "a behaviour allows HTTP"
    caching_optimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"
    variants = [b for b in config["CacheBehaviors"] if b["PathPattern"] == "variants/*"]
    assert variants and variants[0]["TargetOriginId"] == "variants" and variants[0]["CachePolicyId"] == caching_optimized, variants
    routes = of_type("AWS::ApiGatewayV2::Route")
    assert sorted(r["Properties"]["RouteKey"] for r in routes.values()) == ["GET /images", "GET /images/{key+}", "POST /uploads"]
    for name, route in routes.items():
        props = route["Properties"]
        assert props["AuthorizationType"] == "JWT" and props["AuthorizerId"] == {"Ref": "UploadApiAuthorizer"}, name
    authorizer = resources["UploadApiAuthorizer"]["Properties"]
    assert authorizer["AuthorizerType"] == "JWT" and authorizer["IdentitySource"] == ["$request.header.Authorization"]
    cors = resources["SourceBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert [r["AllowedMethods"] for r in cors] == [["POST"]], cors
    table = resources["RecordTable"]["Properties"]
    index = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "ByOwner"]
    assert index and index[0]["KeySchema"] == [{"AttributeName": "Owner", "KeyType": "HASH"},
                                               {"AttributeName": "UploadedAt", "KeyType": "RANGE"}], index
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    fn = resources["UploadApiFunction"]["Properties"]
    assert "VpcConfig" not in fn and set(fn["Environment"]["Variables"]) >= {"TABLE", "SOURCE_BUCKET", "SOURCE_PREFIX", "PUBLIC_BASE_URL", "MAX_SOURCE_BYTES"}


@rule("notification: prefix and the same suffixes in both modes, created and removed events")
def _():
    config = resources["SourceBucket"]["Properties"]["NotificationConfiguration"]["Fn::If"]
    assert config[0] == "UseSqs", config[0]
    env = resources["ForwarderFunction"]["Properties"]["Environment"]["Variables"]
    lambda_suffixes = set(env["SOURCE_SUFFIXES"].split(","))
    for branch, key, target in ((config[1], "QueueConfigurations", "Queue"), (config[2], "LambdaConfigurations", "Function")):
        seen = set()
        for entry in branch[key]:
            assert target in entry, entry
            rules = {r["Name"]: r["Value"] for r in entry["Filter"]["S3Key"]["Rules"]}
            assert rules["prefix"] == {"Ref": "SourcePrefix"}, rules
            seen.add((entry["Event"], rules["suffix"]))
        events = {e for e, _ in seen}
        assert events == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}, events
        for event in events:
            suffixes = {s for e, s in seen if e == event}
            assert {s.lower() for s in suffixes} == lambda_suffixes, f"{key} {event}: {sorted(suffixes)} vs {lambda_suffixes}"
    assert env["SOURCE_PREFIX"] == {"Ref": "SourcePrefix"}
    assert "SIGNING_KEY" not in env, "the secret itself in the Lambda environment"


@rule("queue: visibility >= 6 x function timeout, redrive to the DLQ, room for 64 KB events")
def _():
    queue = resources["JobQueue"]["Properties"]
    timeout = resources["ForwarderFunction"]["Properties"]["Timeout"]
    assert int(queue["VisibilityTimeout"]) >= 6 * int(timeout), (queue["VisibilityTimeout"], timeout)
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert int(queue["MaximumMessageSize"]) >= 65536
    request_ms = int(resources["ForwarderFunction"]["Properties"]["Environment"]["Variables"]["REQUEST_TIMEOUT_MS"])
    assert request_ms < int(timeout) * 1000, "REQUEST_TIMEOUT_MS not below the function timeout"
    mapping = resources["ForwarderEventSource"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    async_config = resources["ForwarderAsyncConfig"]["Properties"]
    assert async_config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


@rule("network: the daemon port only from the forwarder's group, SSH only when asked")
def _():
    ingress = of_type("AWS::EC2::SecurityGroupIngress")
    assert list(ingress) == ["DaemonFromForwarderIngress"], sorted(ingress)
    rule_props = ingress["DaemonFromForwarderIngress"]["Properties"]
    assert rule_props["SourceSecurityGroupId"] == {"Ref": "ForwarderSecurityGroup"}
    assert rule_props["GroupId"] == {"Ref": "InstanceSecurityGroup"}
    assert rule_props["FromPort"] == rule_props["ToPort"] == 8080
    inline = resources["InstanceSecurityGroup"]["Properties"]["SecurityGroupIngress"]["Fn::If"]
    assert inline[0] == "HasSsh" and inline[2] == {"Ref": "AWS::NoValue"}, inline
    assert [r["FromPort"] for r in inline[1]] == [22] and inline[1][0]["CidrIp"] == {"Ref": "SshCidr"}
    for name, group in of_type("AWS::EC2::SecurityGroup").items():
        for egress in group["Properties"].get("SecurityGroupEgress", []):
            assert egress["FromPort"] == egress["ToPort"] == 443, f"{name}: egress {egress}"


@rule("instance: IMDSv2 only, encrypted root and scratch volumes, profile, signal on first boot")
def _():
    data = resources["DaemonLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    devices = {d["DeviceName"]: d["Ebs"] for d in data["BlockDeviceMappings"]}
    assert set(devices) == {"/dev/xvda", "/dev/sdf"}, devices
    assert all(d["Encrypted"] is True for d in devices.values())
    instance = resources["DaemonInstance"]
    assert instance["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    assert instance["Properties"]["IamInstanceProfile"] == {"Ref": "InstanceProfile"}
    assert instance["Properties"]["ImageId"] == {"Ref": "LatestAmiId"}
    ami = template["Parameters"]["LatestAmiId"]
    assert ami["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>" and "al2023" in ami["Default"]


def user_data():
    sub = resources["DaemonInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    # Every ${Name} becomes a stand-in value, ${!Name} a literal ${Name}, as Fn::Sub does.
    text = re.sub(r"\$\{(?!!)([A-Za-z0-9:.]+)\}", lambda m: f"stand-in-{m.group(1).replace(':', '-')}", sub)
    return text.replace("${!", "${")


@rule("UserData: valid bash, and so is the ec2-service-install it writes")
def _():
    text = user_data()
    for name, script in (("UserData", text), ("ec2-service-install", re.search(
            r"cat > /usr/local/sbin/ec2-service-install <<'EOF'\n(.*?)\nEOF\n", text, re.S).group(1))):
        result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr.strip()}"


@rule("systemd unit, config and template agree (drain, watchdog, paths, port)")
def _():
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str
    unit.read(os.path.join(ROOT, "systemd", "ec2-service.service"))
    service = unit["Service"]
    # Placeholders filled with stand-ins, as install-release.sh fills them.
    config = tomllib.loads(re.sub(r"@[A-Z_]+@", "1", open(os.path.join(ROOT, "systemd", "config.toml")).read()))
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] == "on-failure"
    assert "-HUP" in service["ExecReload"]
    drain = config["server"]["drain_secs"]
    assert int(service["TimeoutStopSec"]) >= drain + 15, f"TimeoutStopSec {service['TimeoutStopSec']} vs drain_secs {drain}"
    assert service["EnvironmentFile"] == "/etc/ec2-service/secrets.env"
    assert "/var/lib/" + service["StateDirectory"] == config["scratch"]["dir"]
    assert unit["Unit"]["RequiresMountsFor"] == config["scratch"]["dir"]
    assert service["ExecStart"] == "/usr/local/bin/ec2-service serve --config /etc/ec2-service/config.toml"
    assert config["server"]["listen"].endswith(":8080")
    assert "signing" not in config, "signing keys in config.toml"
    settings = [line for line in open(os.path.join(ROOT, "systemd", "config.toml")) if not line.lstrip().startswith("#")]
    placeholders = set(re.findall(r"@([A-Z_]+)@", "".join(settings)))
    assert placeholders == {"REGION", "SOURCE_BUCKET", "OUTPUT_BUCKET", "TABLE", "MEMORY_BUDGET_BYTES"}, placeholders
    stack_env = re.search(r"cat > /etc/ec2-service/stack.env <<'EOF'\n(.*?)\nEOF\n", user_data(), re.S).group(1)
    keys = {line.split("=", 1)[0] for line in stack_env.splitlines()}
    assert placeholders - {"MEMORY_BUDGET_BYTES"} <= keys, f"stack.env lacks {placeholders - keys}"
    assert service["MemoryMax"].endswith("%") and int(service["MemoryMax"][:-1]) > 60, "MemoryMax not above the budget"


if failures:
    print(f"template-rules: {len(failures)} of {rules_run} rules failed")
    sys.exit(1)
print(f"template-rules: all {rules_run} rules hold")
