"""Static rules of this project for cloudformation/template.yaml and systemd/, beyond what
cfn-lint and checkov know: the properties moto does not apply (so the deploy test cannot see
them), the few IAM statements allowed a "*" resource (which is why checkov's CKV_AWS_111 is
skipped on the roles), the wiring between the template, the unit and the config, and the
syntax of the UserData script. Run by scripts/check-infra.

    .venv/bin/python tests/infra/template_rules.py
"""

import configparser
import json
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
    # CloudWatch metrics (no resource type; scoped by the namespace condition instead).
    "PublishMetrics": {"cloudwatch:PutMetricData"},
    # The SSM agent (Session Manager, Run Command).
    "SessionManagerAgent": {
        "ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations", "ssm:UpdateInstanceAssociationStatus",
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
        "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
        "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
    },
}

# The CloudWatch agent's journald input: the first version that has it (AWS-FACTS.md), the
# keys a collect_list entry may have (the agent's config schema, 1.300071.0).
AGENT_JOURNALD_SINCE = (1, 300070, 0)
AGENT_JOURNALD_KEYS = {"log_group_name", "log_stream_name", "log_group_class", "retention_in_days",
                       "filters", "units", "priority", "matches"}
AGENT_PRIORITIES = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
METRICS_NAMESPACE = "ImagePipeline"

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


@rule('IAM: "*" resources only for the ENI, SSM-agent and metrics actions; no wildcard actions')
def _():
    documents = []
    for name, role in of_type("AWS::IAM::Role").items():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props, f"{name} attaches managed policies"
        documents += [(name, policy["PolicyDocument"]) for policy in props["Policies"]]
    documents += [(name, policy["Properties"]["PolicyDocument"])
                  for name, policy in of_type("AWS::IAM::RolePolicy").items()]
    for name, document in documents:
        for branch in statements(document):
            for st in if_branches(branch):
                actions = set(as_list(st["Action"]))
                assert all("*" not in a for a in actions), f"{name}/{st.get('Sid')}: wildcard action {actions}"
                if "*" in as_list(st["Resource"]):
                    allowed = STAR_RESOURCE_ALLOWED.get(st.get("Sid"))
                    assert allowed is not None, f"{name}/{st.get('Sid')}: Resource '*'"
                    assert actions <= allowed, f"{name}/{st['Sid']}: {sorted(actions - allowed)} on '*'"
                    if st["Sid"] == "PublishMetrics":
                        namespace = st.get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace")
                        assert namespace == METRICS_NAMESPACE, f"{name}/PublishMetrics: namespace {namespace}"


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


@rule("own network: DNS on, no way to or from the internet, endpoints for every API called")
def _():
    assert template["Parameters"]["CreateNetwork"]["Default"] == "true"
    network = {name: r for name, r in resources.items() if r.get("Condition") == "MakeNetwork"}
    kinds = {r["Type"] for r in resources.values()}
    for kind in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::VPCGatewayAttachment",
                 "AWS::EC2::EIP", "AWS::EC2::Route"):
        assert kind not in kinds, f"{kind} in the template"
    vpc = resources["Vpc"]["Properties"]
    assert vpc["EnableDnsSupport"] is True and vpc["EnableDnsHostnames"] is True, vpc
    subnets = [r for r in network.values() if r["Type"] == "AWS::EC2::Subnet"]
    assert len(subnets) == 2 and all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)
    assert {s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets} == {0, 1}, "not two AZs"
    endpoints = {}
    for r in network.values():
        if r["Type"] == "AWS::EC2::VPCEndpoint":
            service = r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]
            endpoints[service] = r["Properties"]
    assert set(endpoints) == {"s3", "dynamodb", "ssm", "ssmmessages", "ec2messages", "secretsmanager", "logs",
                              "monitoring", "sqs", "cloudformation"}, sorted(endpoints)
    for service, props in endpoints.items():
        if service in ("s3", "dynamodb"):
            assert props["VpcEndpointType"] == "Gateway" and props["RouteTableIds"], service
        else:
            assert props["VpcEndpointType"] == "Interface" and props["PrivateDnsEnabled"] is True, service
            assert len(props["SubnetIds"]) == 2, service
    # Every resource with a VPC or subnet takes the stack's own with CreateNetwork true.
    for name in ("ForwarderSecurityGroup", "InstanceSecurityGroup"):
        assert resources[name]["Properties"]["VpcId"] == {"Fn::If": ["MakeNetwork", {"Ref": "Vpc"}, {"Ref": "VpcId"}]}
    assert resources["DaemonInstance"]["Properties"]["SubnetId"]["Fn::If"][0] == "MakeNetwork"
    assert resources["ForwarderFunction"]["Properties"]["VpcConfig"]["SubnetIds"]["Fn::If"][0] == "MakeNetwork"
    rule = template["Rules"]["OwnNetworkIsComplete"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "CreateNetwork"}, "false"]}
    assert len(rule["Assertions"]) == 3


@rule("cfn-lint ignores: only the bring-your-own-network references, whose defaults are empty")
def _():
    ignores = {(name, code) for name, r in resources.items()
               for code in r.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])}
    assert ignores == {("ForwarderSecurityGroup", "W1030"), ("InstanceSecurityGroup", "W1030"),
                       ("DaemonInstance", "W1030"), ("ForwarderFunction", "W1033")}, sorted(ignores)


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
    assert placeholders == {"REGION", "SOURCE_BUCKET", "OUTPUT_BUCKET", "TABLE", "PUBLIC_BASE_URL", "STACK_NAME",
                            "MEMORY_BUDGET_BYTES"}, placeholders
    stack_env = re.search(r"cat > /etc/ec2-service/stack.env <<'EOF'\n(.*?)\nEOF\n", user_data(), re.S).group(1)
    keys = {line.split("=", 1)[0] for line in stack_env.splitlines()}
    assert placeholders - {"MEMORY_BUDGET_BYTES"} <= keys, f"stack.env lacks {placeholders - keys}"
    assert service["MemoryMax"].endswith("%") and int(service["MemoryMax"][:-1]) > 60, "MemoryMax not above the budget"


@rule("CloudWatch agent: pinned >= 1.300070.0, its journald config ships the unit to the stack's log group")
def _():
    sub = resources["DaemonInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    version = re.search(r"^\s*agent_version=(\d+)\.(\d+)\.(\d+)$", sub, re.M)
    assert version, "no agent_version= in the UserData"
    assert tuple(map(int, version.groups())) >= AGENT_JOURNALD_SINCE, f"agent {version.group(0).strip()}"
    assert re.search(r"^\s*agent_key=[0-9A-F]{40}$", sub, re.M), "no pinned signing key fingerprint"
    assert "gpgv --status-fd 1" in sub and "VALIDSIG" in sub, "the package signature is not checked"
    raw = re.search(r"cat > /etc/ec2-service/cloudwatch-agent.json <<'EOF'\n(.*?)\nEOF\n", sub, re.S).group(1)
    config = json.loads(raw)
    assert set(config) <= {"agent", "logs"}, sorted(config)
    assert config["agent"].get("run_as_user") == "cwagent", config["agent"]
    collected = config["logs"]["logs_collected"]
    assert set(collected) == {"journald"}, sorted(collected)
    entries = collected["journald"]["collect_list"]
    assert set(collected["journald"]) == {"collect_list"} and len(entries) == 1, collected["journald"]
    entry = entries[0]
    assert set(entry) <= AGENT_JOURNALD_KEYS, f"keys the agent does not know: {sorted(set(entry) - AGENT_JOURNALD_KEYS)}"
    assert entry["log_group_name"] == "${DaemonLogGroup}", entry["log_group_name"]
    assert entry["log_stream_name"] == "{instance_id}", entry["log_stream_name"]
    assert entry.get("priority", "info") in AGENT_PRIORITIES, entry.get("priority")
    unit = os.path.basename("ec2-service.service").removesuffix(".service")
    assert entry["units"] == [unit], entry["units"]
    # The stack owns the log group and its retention: the agent must not set another.
    assert "retention_in_days" not in entry
    group = resources["DaemonLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, group
    # The daemon's lines are JSON, and the transformer lifts them out of the agent's body.MESSAGE.
    unit = open(os.path.join(ROOT, "systemd", "ec2-service.service")).read()
    assert re.search(r"^Environment=EC2_SERVICE__LOG__FORMAT=json$", unit, re.M), "the unit does not log JSON"
    config_toml = tomllib.loads(re.sub(r"@[A-Z_]+@", "1", open(os.path.join(ROOT, "systemd", "config.toml")).read()))
    assert "format" not in config_toml.get("log", {}), "systemd/config.toml sets [log] format: the unit's wins"
    steps = resources["DaemonLogTransformer"]["Properties"]["TransformerConfig"]
    assert steps == [{"ParseJSON": {}}, {"ParseJSON": {"Source": "body.MESSAGE"}}], steps
    assert resources["DaemonLogTransformer"]["Properties"]["LogGroupIdentifier"] == {"Ref": "DaemonLogGroup"}
    statement = [st for st in statements(resources["DaemonTelemetryPolicy"]["Properties"]["PolicyDocument"])
                 if st["Sid"] == "ShipJournal"][0]
    assert statement["Resource"] == {"Fn::GetAtt": ["DaemonLogGroup", "Arn"]}, statement
    assert "logs:CreateLogGroup" not in as_list(statement["Action"]), "the agent may create log groups"


def readme_metrics():
    """The metric names, their dimensions and the namespace, from the README's table."""
    section = open(os.path.join(ROOT, "README.md")).read().split("### Metrics", 1)[1].split("\n### ", 1)[0]
    namespace = re.search(r"namespace `([A-Za-z]+)`", section).group(1)
    rows = re.findall(r"^\| `([A-Za-z]+)` \| ([^|]+) \|", section, re.M)
    return namespace, {name: set(re.findall(r"`([A-Za-z]+)`", dims)) for name, dims in rows}


@rule("metrics: alarms and dashboard use the README's namespace, names and dimensions")
def _():
    namespace, metrics = readme_metrics()
    assert namespace == METRICS_NAMESPACE, namespace
    assert set(metrics) == {"JobsFinished", "RenderSeconds", "QueueDepth", "OldestWaitingSeconds",
                            "SourceBytes", "ScratchFreeBytes"}, sorted(metrics)
    used = []
    for name, alarm in of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        stats = [props] if "MetricName" in props else [m["MetricStat"]["Metric"] for m in props.get("Metrics", [])
                                                        if "MetricStat" in m]
        for stat in stats:
            if stat["Namespace"] == namespace:
                used.append((name, stat["MetricName"], {d["Name"] for d in stat["Dimensions"]}))
                stack_dim = [d for d in stat["Dimensions"] if d["Name"] == "Stack"]
                assert stack_dim and stack_dim[0]["Value"] == {"Ref": "AWS::StackName"}, f"{name}: Stack dimension"
    alarmed = {metric for _, metric, _ in used}
    assert {"JobsFinished", "OldestWaitingSeconds", "QueueDepth", "ScratchFreeBytes"} <= alarmed, alarmed
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: f"stand-in-{m.group(1)}", body))
    for widget in dashboard["widgets"]:
        previous = None
        for row in widget["properties"].get("metrics", []):
            parts = [p for p in row if isinstance(p, str)]
            if parts[0] == "...":
                parts = previous[:len(previous) - (len(parts) - 1)] + parts[1:]
            previous = parts
            assert parts[0] == namespace, parts
            dims = dict(zip(parts[2::2], parts[3::2]))
            used.append(("Dashboard", parts[1], set(dims)))
            assert dims.get("Stack") == "stand-in-AWS::StackName", parts
    for where, metric, dims in used:
        assert metric in metrics, f"{where}: {metric} is not in the README"
        assert dims == metrics[metric], f"{where}: {metric} with {sorted(dims)}, README says {sorted(metrics[metric])}"
    alarm_names = {r["Properties"]["AlarmName"]["Fn::Sub"] for r in of_type("AWS::CloudWatch::Alarm").values()
                   if "AlarmName" in r["Properties"]}
    listed = [w for w in dashboard["widgets"] if w["type"] == "alarm"][0]["properties"]["alarms"]
    listed = {a.split(":alarm:", 1)[1].replace("stand-in-AWS::StackName", "${AWS::StackName}") for a in listed}
    assert listed == alarm_names, f"dashboard alarms {sorted(listed)} vs {sorted(alarm_names)}"


if failures:
    print(f"template-rules: {len(failures)} of {rules_run} rules failed")
    sys.exit(1)
print(f"template-rules: all {rules_run} rules hold")
