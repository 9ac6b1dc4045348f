"""Static rules of this project for cloudformation/template.yaml and systemd/, beyond what
cfn-lint and checkov know: the properties moto does not apply (so the deploy test cannot see
them), the few IAM statements allowed a "*" resource (which is why checkov's CKV_AWS_111 is
skipped on the roles), the wiring between the template, the unit and the config, and the
syntax of the UserData script. Fleet mode (DeploymentMode fleet): which resources each mode
has, the scaling policy's metric math, the lifecycle hook and its watcher, the fleet's IAM
against the calls the daemon's code makes (moto models no scaling policy or lifecycle hook
and enforces no IAM). Run by scripts/check-infra.

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
SYSTEMD = os.path.join(ROOT, "systemd")

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


def conditions_for(**given):
    """Every condition of the template, evaluated for these parameter values (the others at
    their defaults)."""
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    values.update(given)

    def value(node):
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return values[node["Ref"]]
        if isinstance(node, dict) and set(node) == {"Fn::Join"}:
            sep, parts = node["Fn::Join"]
            return sep.join(value(p) for p in as_list(parts)) if isinstance(parts, list) else value(parts)
        assert isinstance(node, str), f"cannot evaluate {node}"
        return node

    done = {}

    def truth(node):
        if isinstance(node, dict) and set(node) == {"Condition"}:
            return condition(node["Condition"])
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            return value(args[0]) == value(args[1])
        if fn == "Fn::Not":
            return not truth(args[0])
        if fn == "Fn::Or":
            return any(truth(a) for a in args)
        if fn == "Fn::And":
            return all(truth(a) for a in args)
        raise AssertionError(f"condition function {fn}")

    def condition(name):
        if name not in done:
            done[name] = truth(template["Conditions"][name])
        return done[name]

    return {name: condition(name) for name in template["Conditions"]}


def present(conditions):
    """The resources and outputs a stack with these conditions has."""
    kept = lambda r: "Condition" not in r or conditions[r["Condition"]]
    return ({name for name, r in resources.items() if kept(r)},
            {name for name, o in template.get("Outputs", {}).items() if kept(o)})


FLEET = {"DeploymentMode": "fleet"}


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


@rule("network: the daemon port only from the forwarder's group (single mode), SSH only when asked")
def _():
    ingress = of_type("AWS::EC2::SecurityGroupIngress")
    assert list(ingress) == ["DaemonFromForwarderIngress"], sorted(ingress)
    assert ingress["DaemonFromForwarderIngress"].get("Condition") == "Single", "the daemon port open in fleet mode"
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
    network = {name: r for name, r in resources.items() if r.get("Condition") in ("MakeNetwork", "FleetInOwnNetwork")}
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
                              "monitoring", "sqs", "cloudformation", "autoscaling"}, sorted(endpoints)
    # The fleet's watcher calls Auto Scaling: its endpoint exists in fleet mode (the own network).
    assert resources["AutoScalingEndpoint"]["Condition"] == "FleetInOwnNetwork"
    assert template["Conditions"]["FleetInOwnNetwork"] == {"Fn::And": [{"Condition": "Fleet"}, {"Condition": "MakeNetwork"}]}
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
    group = resources["DaemonGroup"]["Properties"]["VPCZoneIdentifier"]
    assert group == {"Fn::If": ["MakeNetwork", [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}], {"Ref": "FleetSubnetIds"}]}, group
    rule = template["Rules"]["OwnNetworkIsComplete"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "CreateNetwork"}, "false"]}
    assert len(rule["Assertions"]) == 4
    required = json.dumps(rule["Assertions"])
    for name in ("VpcId", "InstanceSubnetId", "LambdaSubnetIds", "FleetSubnetIds"):
        assert f'{{"Ref": "{name}"}}' in required, f"the rule does not require {name}"


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
    assert data["ImageId"] == {"Ref": "LatestAmiId"} and data["IamInstanceProfile"] == {"Name": {"Ref": "InstanceProfile"}}
    assert data["SecurityGroupIds"] == [{"Ref": "InstanceSecurityGroup"}], data["SecurityGroupIds"]
    assert data["InstanceType"] == {"Ref": "InstanceType"}
    instance = resources["DaemonInstance"]
    assert instance["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    # The instance names the same image, type and profile as its launch template.
    assert instance["Properties"]["IamInstanceProfile"] == {"Ref": "InstanceProfile"}
    assert instance["Properties"]["ImageId"] == data["ImageId"]
    assert instance["Properties"]["InstanceType"] == data["InstanceType"]
    assert "UserData" not in instance["Properties"], "the instance has its own UserData: the template's is the one"
    assert instance["Properties"]["LaunchTemplate"] == resources["DaemonGroup"]["Properties"]["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": "DaemonLaunchTemplate"},
        "Version": {"Fn::GetAtt": ["DaemonLaunchTemplate", "LatestVersionNumber"]}}
    ami = template["Parameters"]["LatestAmiId"]
    assert ami["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>" and "al2023" in ami["Default"]


def user_data_sub():
    """The UserData's Fn::Sub: its text and its variables."""
    text, variables = resources["DaemonLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    return text, variables


def user_data(**given):
    """The UserData as Fn::Sub renders it for these parameters: its variables' Fn::If
    resolved, their Ref and Sub and every other ${Name} as stand-in values, ${!Name} a
    literal ${Name}."""
    text, variables = user_data_sub()
    conditions = conditions_for(**given)
    standin = lambda name: f"stand-in-{name.replace(':', '-')}"

    def resolve(node):
        if isinstance(node, dict) and "Fn::If" in node:
            name, yes, no = node["Fn::If"]
            return resolve(yes if conditions[name] else no)
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return standin(node["Ref"])
        if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: standin(m.group(1)), node["Fn::Sub"])
        assert isinstance(node, str), node
        return node

    values = {name: resolve(v) for name, v in variables.items()}
    text = re.sub(r"\$\{(?!!)([A-Za-z0-9:.]+)\}", lambda m: values.get(m.group(1), standin(m.group(1))), text)
    return text.replace("${!", "${")


def stack_env(**given):
    text = re.search(r"cat > /etc/ec2-service/stack.env <<'EOF'\n(.*?)\nEOF\n", user_data(**given), re.S).group(1)
    return dict(line.split("=", 1) for line in text.splitlines())


@rule("UserData (both modes): valid bash, and so is the ec2-service-install it writes")
def _():
    for mode in ("single", "fleet"):
        text = user_data(DeploymentMode=mode)
        for name, script in (("UserData", text), ("ec2-service-install", re.search(
                r"cat > /usr/local/sbin/ec2-service-install <<'EOF'\n(.*?)\nEOF\n", text, re.S).group(1))):
            result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert result.returncode == 0, f"{mode} {name}: {result.stderr.strip()}"


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
    keys = set(stack_env())
    assert placeholders - {"MEMORY_BUDGET_BYTES"} <= keys, f"stack.env lacks {placeholders - keys}"
    assert service["MemoryMax"].endswith("%") and int(service["MemoryMax"][:-1]) > 60, "MemoryMax not above the budget"


@rule("CloudWatch agent: pinned >= 1.300070.0, its journald config ships the unit to the stack's log group")
def _():
    sub = user_data_sub()[0]
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


# ---------------------------------------------------------------- fleet mode (issue 11)
FORWARDER = {"ForwarderLogGroup", "ForwarderSecurityGroup", "ForwarderToDaemonEgress", "ForwarderRole",
             "ForwarderFunction", "ForwarderEventSource", "DaemonFromForwarderIngress", "ForwarderErrorsAlarm"}
FLEET_ONLY = {"DaemonGroup", "DaemonBacklogScaling", "DaemonFleetPolicy"}
SINGLE_ONLY = FORWARDER | {"DaemonInstance", "InstanceSystemStatusAlarm", "InstanceStatusAlarm"}
LIFECYCLE_HOOK = "drain-before-terminate"


@rule("modes: fleet has the group, its policy and grants and the queue, and no forwarder, mapping or single instance")
def _():
    single, single_outputs = present(conditions_for())
    fleet, fleet_outputs = present(conditions_for(**FLEET))
    direct, _ = present(conditions_for(TriggerMode="direct"))
    assert SINGLE_ONLY <= single and not FLEET_ONLY & single, sorted(FLEET_ONLY & single)
    assert FLEET_ONLY <= fleet and not SINGLE_ONLY & fleet, sorted(SINGLE_ONLY & fleet)
    assert not {n for n in fleet if resources[n]["Type"].startswith("AWS::Lambda::") and n.startswith("Forwarder")}
    assert {"JobQueue", "JobQueuePolicy", "DeadLetterQueue", "JobQueueAgeAlarm"} <= fleet
    assert "JobQueue" not in direct and "ForwarderEventSource" not in direct
    # Everything else is the same in both modes (buckets, table, edges, telemetry, alarms).
    assert single - SINGLE_ONLY - {"AutoScalingEndpoint"} == fleet - FLEET_ONLY - {"AutoScalingEndpoint"}, \
        sorted((single - SINGLE_ONLY) ^ (fleet - FLEET_ONLY))
    assert {"FleetGroupName", "JobQueueUrl"} <= fleet_outputs and not {"InstanceId", "ForwarderFunctionName",
                                                                        "SshCommand"} & fleet_outputs
    assert "FleetGroupName" not in single_outputs and "InstanceId" in single_outputs
    # Fleet needs the queue: the rule refuses direct, and the conditions make the queue anyway.
    rule = template["Rules"]["FleetNeedsTheQueue"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "DeploymentMode"}, "fleet"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "TriggerMode"}, "sqs"]}
    assert "JobQueue" in present(conditions_for(TriggerMode="direct", **FLEET))[0]


def expression_value(metrics, wanted, values):
    """The value of metric math expression `wanted` given the metrics' values."""
    by_id = {m["Id"]: m for m in metrics}
    m = by_id[wanted]
    if "MetricStat" in m:
        return values[wanted]
    expression = m["Expression"]
    if isinstance(expression, dict):
        expression = re.sub(r"\$\{([A-Za-z]+)\}", lambda g: str(values[g.group(1)]), expression["Fn::Sub"])
    tokens = re.findall(r"[A-Za-z][A-Za-z0-9_]*|[0-9.]+|[-+*/()]|\S", expression)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*|[0-9.]+|[-+*/()]", t) for t in tokens), expression
    text = " ".join(str(expression_value(metrics, t, values)) if t in by_id else t for t in tokens)
    return eval(text, {"__builtins__": {}})  # digits and + - * / ( ) only, checked above


@rule("fleet scaling: target tracking on visible messages / in-service instances against latency / seconds per photo")
def _():
    policy = resources["DaemonBacklogScaling"]["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling" and policy["AutoScalingGroupName"] == {"Ref": "DaemonGroup"}
    config = policy["TargetTrackingConfiguration"]
    assert not config.get("DisableScaleIn"), "scale-in disabled"
    metrics = config["CustomizedMetricSpecification"]["Metrics"]
    stats = {m["Id"]: m["MetricStat"] for m in metrics if "MetricStat" in m}
    visible = [i for i, st in stats.items() if st["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    inservice = [i for i, st in stats.items() if st["Metric"]["MetricName"] == "GroupInServiceInstances"]
    assert len(visible) == len(inservice) == 1 and len(stats) == 2, sorted(stats)
    assert stats[visible[0]]["Metric"] == {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                                           "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobQueue", "QueueName"]}}]}
    assert stats[inservice[0]]["Metric"] == {"Namespace": "AWS/AutoScaling", "MetricName": "GroupInServiceInstances",
                                             "Dimensions": [{"Name": "AutoScalingGroupName", "Value": {"Ref": "DaemonGroup"}}]}
    returned = [m["Id"] for m in metrics if m.get("ReturnData", True)]
    assert len(returned) == 1, f"metric math must return one series, returns {returned}"
    assert config["TargetValue"] == {"Ref": "FleetAcceptableLatencySecs"}, config["TargetValue"]
    # At the target exactly when the backlog per instance is latency / seconds per photo,
    # above it when more, below when less (whatever the numbers).
    for v, n, latency, spp in ((300, 2, 30, 0.1), (40, 4, 60, 1.5), (7, 1, 5, 0.25)):
        at = latency / spp * n
        for backlog, sign in ((at, 0), (at * 1.5, 1), (at / 2, -1)):
            value = expression_value(metrics, returned[0], {visible[0]: backlog, inservice[0]: n, "FleetSecondsPerPhoto": spp})
            assert (value > latency) - (value < latency) == sign, (backlog, n, latency, spp, value)
    assert template["Parameters"]["FleetMinSize"]["MinValue"] >= 1, "backlog per instance with no instance"
    group = resources["DaemonGroup"]["Properties"]
    collected = group["MetricsCollection"]
    assert any(c["Granularity"] == "1Minute" and "GroupInServiceInstances" in c["Metrics"] for c in collected), collected
    assert (group["MinSize"], group["MaxSize"]) == ({"Ref": "FleetMinSize"}, {"Ref": "FleetMaxSize"})
    assert group["DesiredCapacity"] == {"Fn::If": ["HasFleetDesired", {"Ref": "FleetDesiredCapacity"}, {"Ref": "AWS::NoValue"}]}
    assert group["DefaultInstanceWarmup"] == {"Ref": "FleetInstanceWarmupSecs"}
    assert resources["DaemonGroup"]["CreationPolicy"]["ResourceSignal"]["Count"] == {"Ref": "FleetMinSize"}


@rule("fleet scale-in: the termination hook, the watcher that completes it, and the names they share")
def _():
    group = resources["DaemonGroup"]["Properties"]
    hooks = group["LifecycleHookSpecificationList"]
    assert len(hooks) == 1, hooks
    hook = hooks[0]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING" and hook["DefaultResult"] == "CONTINUE"
    assert hook["LifecycleHookName"] == LIFECYCLE_HOOK
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str
    unit.read(os.path.join(SYSTEMD, "ec2-service.service"))
    stop = int(unit["Service"]["TimeoutStopSec"])
    assert int(hook["HeartbeatTimeout"]) >= stop + 60, f"HeartbeatTimeout {hook['HeartbeatTimeout']} vs TimeoutStopSec {stop}"
    name = group["AutoScalingGroupName"]["Fn::Sub"]
    fleet_env = stack_env(**FLEET)
    single_env = stack_env()
    assert fleet_env["FLEET_GROUP"] == name.replace("${EnvName}", "stand-in-EnvName"), fleet_env
    assert fleet_env["LIFECYCLE_HOOK"] == LIFECYCLE_HOOK and fleet_env["INTAKE_MODE"] == "sqs"
    assert fleet_env["QUEUE_URL"] == "stand-in-JobQueue", fleet_env["QUEUE_URL"]
    assert single_env["INTAKE_MODE"] == "http" and single_env["FLEET_GROUP"] == single_env["QUEUE_URL"] == ""
    # The first boot signals whichever resource waits for it.
    fleet_boot, single_boot = user_data(**FLEET), user_data()
    assert "--logical-resource-id DaemonGroup " in fleet_boot and "--logical-resource-id DaemonInstance " in single_boot
    statement = [st for st in statements(resources["DaemonFleetPolicy"]["Properties"]["PolicyDocument"])
                 if st["Sid"] == "CompleteScaleIn"][0]
    assert as_list(statement["Action"]) == ["autoscaling:CompleteLifecycleAction"], statement
    assert statement["Resource"]["Fn::Sub"].endswith(":autoScalingGroup:*:autoScalingGroupName/" + name), statement
    # The watcher reads those names and completes the action after stopping the daemon; the
    # release carries it and the installer installs it.
    watcher = open(os.path.join(SYSTEMD, "ec2-service-lifecycle.sh")).read()
    for needed in ("FLEET_GROUP", "LIFECYCLE_HOOK", "REGION", "autoscaling/target-lifecycle-state",
                   "AWS_EC2_METADATA_SERVICE_ENDPOINT", "--lifecycle-action-result CONTINUE"):
        assert needed in watcher, f"the watcher does not use {needed}"
    assert watcher.index("systemctl stop ec2-service") < watcher.index("complete-lifecycle-action"), "completes before draining"
    deploy = open(os.path.join(ROOT, "scripts", "deploy")).read()
    assert re.search(r"release_files=\([^)]*ec2-service-lifecycle\.sh[^)]*ec2-service-lifecycle\.service", deploy), \
        "scripts/deploy does not ship the watcher"
    installer = open(os.path.join(SYSTEMD, "install-release.sh")).read()
    assert "ec2-service-lifecycle.sh" in installer and "enable ec2-service-lifecycle.service" in installer


RUST_TO_IAM = {
    "receive_message": "sqs:ReceiveMessage", "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage", "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility", "get_queue_attributes": "sqs:GetQueueAttributes",
    "send_message": "sqs:SendMessage", "send_message_batch": "sqs:SendMessage",
    "get_item": "dynamodb:GetItem", "batch_get_item": "dynamodb:BatchGetItem", "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem", "delete_item": "dynamodb:DeleteItem", "query": "dynamodb:Query",
    "scan": "dynamodb:Scan", "describe_table": "dynamodb:DescribeTable", "batch_write_item": "dynamodb:BatchWriteItem",
    "transact_write_items": "dynamodb:TransactWriteItems", "transact_get_items": "dynamodb:TransactGetItems",
}


def daemon_calls(service):
    """The IAM actions of the SQS or DynamoDB calls in the daemon's source."""
    calls = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "ec2-service", "src")):
        for name in files:
            if name.endswith(".rs"):
                text = open(os.path.join(folder, name)).read()
                if f"aws_sdk_{service}" in text:
                    calls |= {RUST_TO_IAM[m] for m in re.findall(r"\.([a-z_]+)\(\)", text) if m in RUST_TO_IAM
                              and RUST_TO_IAM[m].startswith(("sqs:" if service == "sqs" else "dynamodb:"))}
    return calls


@rule("fleet IAM: the daemon's SQS calls on the job queue only, the lease by its key, the records never the lease")
def _():
    fleet = {st["Sid"]: st for st in statements(resources["DaemonFleetPolicy"]["Properties"]["PolicyDocument"])}
    assert set(fleet) == {"ConsumeJobQueue", "ReconcileLease", "CompleteScaleIn"}, sorted(fleet)
    sqs = fleet["ConsumeJobQueue"]
    calls = daemon_calls("sqs")
    assert calls and set(as_list(sqs["Action"])) == calls, f"granted {sorted(as_list(sqs['Action']))}, the daemon calls {sorted(calls)}"
    assert sqs["Resource"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}, sqs["Resource"]
    lease_key = re.search(r'pub const RECONCILE_LEASE_KEY: &str = "([^"]+)";',
                          open(os.path.join(ROOT, "ec2-service", "src", "aws", "records.rs")).read()).group(1)
    lease = fleet["ReconcileLease"]
    assert lease["Resource"] == {"Fn::GetAtt": ["RecordTable", "Arn"]}
    assert lease["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [lease_key]}}, lease["Condition"]
    records = [st for st in statements(resources["InstanceRole"]["Properties"]["Policies"][0]["PolicyDocument"])
               if st.get("Sid") == "Records"][0]
    assert records["Condition"] == {"ForAllValues:StringNotEquals": {"dynamodb:LeadingKeys": [lease_key]}}, records
    # Every DynamoDB call of the daemon is granted, on the records or on the lease.
    granted = set(as_list(records["Action"])) | set(as_list(lease["Action"]))
    missing = daemon_calls("dynamodb") - granted
    assert not missing, f"the daemon calls {sorted(missing)}, not granted"
    assert set(as_list(lease["Action"])) == {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    # The single box has none of it; the forwarder's queue grant exists only with its mapping.
    assert resources["DaemonFleetPolicy"]["Condition"] == "Fleet"
    forwarder = [b for st in statements(resources["ForwarderRole"]["Properties"]["Policies"][0]["PolicyDocument"])
                 if isinstance(st, dict) and "Fn::If" in st for b in [st]]
    assert forwarder and forwarder[0]["Fn::If"][0] == "ForwarderOnQueue", forwarder


@rule("fleet intake: stack.env gives the daemon the [intake] keys it has, the forwarder's filter and the queue's visibility")
def _():
    example = tomllib.loads(open(os.path.join(ROOT, "ec2-service", "config.example.toml")).read())
    installer = open(os.path.join(SYSTEMD, "install-release.sh")).read()
    written = set(re.findall(r"Environment=EC2_SERVICE__INTAKE__([A-Z_]+)=", installer))
    assert written == {"MODE", "QUEUE_URL", "VISIBILITY_TIMEOUT_SECS", "SOURCE_PREFIX", "SOURCE_SUFFIXES"}, written
    assert {k.lower() for k in written} <= set(example["intake"]), f"[intake] has no {sorted({k.lower() for k in written} - set(example['intake']))}"
    fleet_env = stack_env(**FLEET)
    forwarder = resources["ForwarderFunction"]["Properties"]["Environment"]["Variables"]
    assert fleet_env["SOURCE_SUFFIXES"] == forwarder["SOURCE_SUFFIXES"], (fleet_env["SOURCE_SUFFIXES"], forwarder["SOURCE_SUFFIXES"])
    assert fleet_env["SOURCE_PREFIX"] == "stand-in-SourcePrefix"
    queue = resources["JobQueue"]["Properties"]
    assert int(fleet_env["VISIBILITY_TIMEOUT_SECS"]) == int(queue["VisibilityTimeout"])
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Fn::If": ["Fleet", example["retry"]["max_attempts"], 5]}, \
        queue["RedrivePolicy"]["maxReceiveCount"]
    # The prefix reaches bash (stack.env) and a unit file: the parameter admits only what the
    # installer accepts.
    pattern = template["Parameters"]["SourcePrefix"]["AllowedPattern"]
    accepted = re.search(r'=~ \^\[([^]]+)\]\+\$ \]\]', installer).group(1)
    for probe in ("uploads/", "a/b/", "photos(2)/", "my uploads/", "a%b/", "x'y/", 'q"/', "$HOME/", "a;b/", "ü/"):
        if re.fullmatch(pattern, probe):
            assert re.fullmatch(f"[{accepted}]+", probe), f"SourcePrefix admits {probe!r}, the installer refuses it"
    assert re.fullmatch(pattern, "uploads/") and not re.fullmatch(pattern, "my uploads/")


def readme_metrics():
    """The metric names, their dimensions and the namespace, from the README's table."""
    section = open(os.path.join(ROOT, "README.md")).read().split("### Metrics", 1)[1].split("\n### ", 1)[0]
    namespace = re.search(r"namespace\s+`([A-Za-z]+)`", section).group(1)
    rows = re.findall(r"^\| `([A-Za-z]+)` \| ([^|]+) \|", section, re.M)
    return namespace, {name: set(re.findall(r"`([A-Za-z]+)`", dims)) for name, dims in rows}


@rule("metrics: alarms and dashboard use the README's namespace, names and dimensions")
def _():
    namespace, metrics = readme_metrics()
    assert namespace == METRICS_NAMESPACE, namespace
    assert set(metrics) == {"JobsFinished", "RenderSeconds", "QueueDepth", "OldestWaitingSeconds",
                            "SourceBytes", "ScratchFreeBytes"}, sorted(metrics)
    # The names and dimensions the daemon publishes (ec2-service/src/aws/cloudwatch.rs).
    published = set(re.findall(r'^pub const [A-Z_]+: &str = "([A-Za-z]+)";',
                               open(os.path.join(ROOT, "ec2-service", "src", "aws", "cloudwatch.rs")).read(), re.M))
    dimensions = set().union(*metrics.values())
    assert set(metrics) | dimensions == published, f"README {sorted(set(metrics) | dimensions)}, daemon {sorted(published)}"
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
