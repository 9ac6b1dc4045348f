"""End-to-end test of scripts/deploy against a local moto server (no AWS account).

Starts moto (tests/infra/moto_server.py) on loopback, makes a VPC with two subnets, and runs
the real scripts/deploy with small stand-in artifacts (moto never runs them):

  1. stack "pipe-sqs" in sqs mode: buckets, table keyed on FileName, queue with redrive to
     the DLQ, the forwarder (provided.al2023, in the VPC, reserved concurrency, its env wired
     to the instance and the secret), the SQS mapping with partial batch responses, the
     instance with its profile and launch template, the roles, the release parameter, the
     uploaded release, and every output. Then the ec2-service-install that the UserData
     writes (as moto rendered it) runs against moto into a scratch root: it fetches, verifies
     and installs the release, and refuses one changed in the bucket after the deploy.
  2. stack "pipe-dir" in direct mode: no job queue and no mapping, the DLQ still there.
  4. "pipe-sqs" again with a new daemon binary: an update that keeps the instance, changes the
     release parameter and the Lambda's code key, and reinstalls through SSM Run Command.

  3. stack "pipe-own" with nothing but the stack's name and a region: the stack's own network
     (CreateNetwork true: VPC, private subnets in two AZs, route table, gateway endpoints for
     S3 and DynamoDB, interface endpoints, flow log) with the instance and the forwarder in
     it, and the default artifact bucket.

  6. stack "pipe-fleet" in fleet mode (DeploymentMode fleet) in your network: the Auto Scaling
     group over the two subnets (two AZs) with its sizes and the launch template, its
     instances running the template's UserData (stack.env naming sqs mode, the queue, the
     group and the hook; the signal to DaemonGroup), the queue's visibility and redrive to the
     DLQ after 8 receives, no forwarder, no mapping, no single instance. A fleet instance's
     first install (the drop-in with the daemon's intake environment, the scale-in watcher),
     then the watcher itself, run from what that install left: against the IMDSv2 stand-in
     (scripts/lib/box_metadata.py, short-lived tokens) and moto's Auto Scaling (the group,
     its instance, the hook the template declares), it waits while the state is absent or
     InService, and on Terminated stops the daemon (a stand-in systemctl) before it completes
     the lifecycle action, retrying while Auto Scaling refuses it.
  7. "pipe-own" moved to fleet mode (an update, the move the README describes): the same
     queue, buckets and table; the group in the stack's private subnets, the Auto Scaling
     endpoint; the forwarder, its mapping and the single instance gone.

moto's CloudFormation ignores notifications, bucket and queue policies, most bucket
properties, the secret, the alarms, the async invoke config, the egress rules, the log group's
transformer, the instance's telemetry policy and the fleet's (AWS::IAM::RolePolicy), the
template's Rules (the BYO-network and fleet-needs-the-queue assertions), the VPC's
EnableDnsHostnames, the subnets' route table associations (created, not shown on the route
table) and what VPC endpoints do (no private DNS, no policy is enforced; moto stores them).
It reads an instance's own properties and not its launch template (the single instance's
UserData is read from the template's version here), and applies no RedrivePolicy change
on an update. In fleet mode it has no model for AWS::AutoScaling::ScalingPolicy (skipped:
no scaling policy exists, none is evaluated) and ignores the group's
LifecycleHookSpecificationList, MetricsCollection, DefaultInstanceWarmup and CreationPolicy
(it waits for no signal); its Auto Scaling API has lifecycle hooks (put here as the
template declares them) but no CompleteLifecycleAction and no Terminating:Wait state (the
stand-in answers and checks the action against moto's group). The static checks (cfn-lint,
checkov, tests/infra/template_rules.py) cover all of those.

moto models no CloudFront, Cognito or API Gateway v2 resource (it skips them, and a GetAtt on
one fails the whole stack): the template deployed here is cloudformation/template.yaml with
each Ref and GetAtt of those resources replaced by a stand-in value (the distribution's
domain is d111111abcdef8.cloudfront.net). What is checked instead is everything that consumes
them and that moto does create: the upload API function (runtime, no VPC, reserved
concurrency, its environment naming the table, the source bucket and the distribution's URL),
its role, the table's ByOwner index, the web bucket, the web page and its config.js that
scripts/deploy uploads, and the daemon's PUBLIC_BASE_URL in the UserData's stack.env. Run by scripts/check-infra; prints one line per assertion group and exits
non-zero on the first failure.

    .venv/bin/python tests/infra/moto_deploy.py
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

import boto3

import moto_stack
from moto_stack import complete_user_data, lifecycle_hooks

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
REGION = "eu-west-1"
ARTIFACT_BUCKET = "pipeline-artifacts-test"
DOMAIN_STANDIN = moto_stack.DOMAIN_STANDIN
API_STANDIN = moto_stack.api_standin(REGION)


def moto_template(path):
    """The stack's template as moto can deploy it (tests/infra/moto_stack.py)."""
    return moto_stack.moto_template(path, REGION)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def start_moto(log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [VENV_PYTHON, os.path.join(ROOT, "tests", "infra", "moto_server.py"), "-H", "127.0.0.1", "-p", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto exited early; see {log_path}")
        match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", open(log_path).read())
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
                return proc, url
            except OSError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"moto did not answer within 60 s; see {log_path}")


def make_artifacts(directory, daemon_text):
    upload_api = os.path.join(directory, "upload-api.zip")
    with zipfile.ZipFile(upload_api, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho stand-in upload API\n")
    bootstrap = os.path.join(directory, "bootstrap")
    with open(bootstrap, "w") as f:
        f.write("#!/bin/sh\necho stand-in forwarder\n")
    zip_path = os.path.join(directory, "bootstrap.zip")
    with zipfile.ZipFile(zip_path, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, open(bootstrap).read())
    daemon = os.path.join(directory, "ec2-service")
    with open(daemon, "w") as f:
        f.write(daemon_text)
    return zip_path, daemon


def deploy(endpoint, env, stack, zip_path, daemon, params, artifact_bucket=ARTIFACT_BUCKET):
    template = moto_template(os.path.join(os.path.dirname(zip_path), "template-for-moto.json"))[0]
    cmd = [
        os.path.join(ROOT, "scripts", "deploy"),
        "--stack", stack,
        "--region", REGION,
        "--endpoint-url", endpoint,
        "--lambda-zip", zip_path,
        "--daemon-binary", daemon,
        "--upload-api-zip", os.path.join(os.path.dirname(zip_path), "upload-api.zip"),
        "--template-file", template,
    ] + (["--artifact-bucket", artifact_bucket] if artifact_bucket else [])
    for key, value in params.items():
        cmd += ["-p", f"{key}={value}"]
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise AssertionError(f"scripts/deploy {stack} exited {result.returncode}")
    print(f"  scripts/deploy {stack}: {time.monotonic() - started:.1f} s")
    # The script's last lines on stdout are the outputs, "Key<TAB>Value".
    printed = dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    return printed, result.stderr


STUBS = {
    # What the instance has and a scratch root cannot: systemd and user management.
    "systemctl": '#!/bin/sh\necho "systemctl $*" >> "$STUB_LOG"\n',
    "useradd": '#!/bin/sh\necho "useradd $*" >> "$STUB_LOG"\ntouch "$STUB_LOG.user"\n',
    "id": '#!/bin/sh\n[ -e "$STUB_LOG.user" ]\n',
}
NOT_ROOT_STUBS = {
    "chown": "#!/bin/sh\n",
    "install": '#!/bin/bash\nargs=()\nwhile [ $# -gt 0 ]; do case "$1" in -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac; done\n'
               'exec /usr/bin/install "${args[@]}"\n',
}


def launch_template_user_data(clients, resources):
    """The UserData of the stack's launch template, as moto rendered it (the single instance
    takes it from there; moto gives that instance none of its own)."""
    import base64
    ec2 = clients[5]
    version = ec2.describe_launch_template_versions(
        LaunchTemplateId=resources["DaemonLaunchTemplate"]["PhysicalResourceId"], Versions=["$Latest"])
    return base64.b64decode(version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()


def heredoc(script, path):
    match = re.search(rf"cat > {re.escape(path)} <<'EOF'\n(.*?)\nEOF\n", script, re.S)
    check(match, f"UserData writes no {path}")
    return match.group(1) + "\n"


def first_boot_install(endpoint, user_data, work, secret_arn, name="instance"):
    """Runs the ec2-service-install that the stack's UserData writes (as moto rendered it),
    against moto and into a scratch root: the fetch of the release the stack names, its
    checks, and install-release.sh."""
    # moto does not create the secret, so ${SigningSecret} stays as it is (moto_stack fills it).
    user_data = complete_user_data(user_data, secret_arn)
    fake = os.path.join(work, name)
    bin_dir = os.path.join(work, f"{name}-bin")
    os.makedirs(os.path.join(fake, "etc", "ec2-service"), exist_ok=True)
    os.makedirs(bin_dir, exist_ok=True)
    stack_env = heredoc(user_data, "/etc/ec2-service/stack.env")
    with open(os.path.join(fake, "etc", "ec2-service", "stack.env"), "w") as f:
        f.write(stack_env)
    installer = heredoc(user_data, "/usr/local/sbin/ec2-service-install").replace(
        "/etc/ec2-service/stack.env", os.path.join(fake, "etc", "ec2-service", "stack.env"))
    installer_path = os.path.join(work, "ec2-service-install")
    with open(installer_path, "w") as f:
        f.write(installer)
    stubs = dict(STUBS, **(NOT_ROOT_STUBS if os.geteuid() != 0 else {}))
    stubs["aws"] = f'#!/bin/sh\nexec {os.path.join(ROOT, ".venv", "bin", "aws")} "$@"\n'
    for command, text in stubs.items():
        with open(os.path.join(bin_dir, command), "w") as f:
            f.write(text)
        os.chmod(os.path.join(bin_dir, command), 0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", EC2_SERVICE_INSTALL_ROOT=fake,
               AWS_ENDPOINT_URL=endpoint, STUB_LOG=os.path.join(work, f"{name}-calls"))
    return subprocess.run(["bash", installer_path], env=env, capture_output=True, text=True, timeout=120), fake


def outputs_of(cf, stack):
    described = cf.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}


def resources_of(cf, stack):
    summaries = cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r for r in summaries if r.get("LogicalResourceId")}


SINGLE_OUTPUTS = {"InstanceId", "InstancePrivateIp", "ForwarderFunctionName"}


def assert_common(clients, stack, env_name, printed, fleet=None):
    """What every stack has, and the mode's own (fleet: the group's expected subnets, sizes
    and redrive count, see assert_common_fleet)."""
    cf, s3, ddb, sqs, lam, ec2, iam, ssm = clients[:8]
    outputs = outputs_of(cf, stack)
    expected = {
        "SourceBucketName", "OutputBucketName", "TableName", "DeadLetterQueueUrl", "ReleaseParameterName",
        "ConnectCommand", "LogsCommand", "ReinstallCommand", "UploadCommand", "DaemonLogGroupName", "DashboardName",
        "WebUrl", "PublicBaseUrl", "DistributionId", "WebBucketName", "UploadApiUrl", "UploadApiFunctionName",
        "JwtIssuerUrl", "WebClientId", "UserPoolId", "SignInUrl",
    } | ({"FleetGroupName", "JobQueueUrl"} if fleet else SINGLE_OUTPUTS)
    check(expected <= set(outputs), f"{stack}: outputs missing {sorted(expected - set(outputs))}")
    if fleet:
        check(not SINGLE_OUTPUTS & set(outputs), f"{stack}: single-mode outputs {sorted(SINGLE_OUTPUTS & set(outputs))}")
    for key in expected:
        check(printed.get(key) == outputs[key], f"{stack}: scripts/deploy did not print output {key}")
    check("SshCommand" not in outputs, f"{stack}: SshCommand without a KeyName")

    resources = resources_of(cf, stack)

    # Buckets: deterministic names (the notification grants need them before the bucket exists).
    source, output = outputs["SourceBucketName"], outputs["OutputBucketName"]
    check(source == f"image-pipeline-{env_name}-source-123456789012-{REGION}", f"source bucket name {source}")
    check(output == f"image-pipeline-{env_name}-output-123456789012-{REGION}", f"output bucket name {output}")
    # moto applies only the encryption of a bucket's properties; versioning, the public access
    # block, the lifecycle and the TLS-only policy are checked statically (template_rules.py).
    for bucket in (source, output):
        s3.head_bucket(Bucket=bucket)
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        check(rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", f"{bucket} not encrypted")
    print(f"  {stack}: buckets {source}, {output}: encrypted")

    # Table: key FileName (string), on demand.
    table = ddb.describe_table(TableName=outputs["TableName"])["Table"]
    check(table["KeySchema"] == [{"AttributeName": "FileName", "KeyType": "HASH"}], f"key schema {table['KeySchema']}")
    check({"AttributeName": "FileName", "AttributeType": "S"} in table["AttributeDefinitions"], "FileName not a string")
    check(table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", "table not on demand")
    print(f"  {stack}: table {table['TableName']}: key FileName (S), on demand")

    # DLQ: 14 days of retention, in both modes.
    dlq_attrs = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["All"])["Attributes"]
    check(dlq_attrs["MessageRetentionPeriod"] == "1209600", f"DLQ retention {dlq_attrs['MessageRetentionPeriod']}")

    if fleet:
        assert_common_fleet(clients, stack, env_name, outputs, resources, **fleet)
        release = assert_release(clients, stack, outputs)
        assert_telemetry(clients, stack, env_name, outputs)
        assert_edges(clients, stack, env_name, outputs, resources, release[3], release[0])
        return outputs, resources, release[:3]

    # Function: provided.al2023, in the VPC, reserved concurrency, env wired to the stack.
    fn_name = outputs["ForwarderFunctionName"]
    check(fn_name == f"image-pipeline-{env_name}-forwarder", f"function name {fn_name}")
    fn = lam.get_function(FunctionName=fn_name)
    config = fn["Configuration"]
    check(config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap", "runtime/handler")
    check(len(config["VpcConfig"]["SubnetIds"]) == 2, f"function subnets {config['VpcConfig']}")
    check(config["VpcConfig"]["SecurityGroupIds"] == [resources["ForwarderSecurityGroup"]["PhysicalResourceId"]],
          "function not in its own security group")
    check(fn.get("Concurrency", {}).get("ReservedConcurrentExecutions") == 5, f"reserved concurrency {fn.get('Concurrency')}")
    env = config["Environment"]["Variables"]
    check(env["EC2_SERVICE_URL"] == f"http://{outputs['InstancePrivateIp']}:8080", f"EC2_SERVICE_URL {env['EC2_SERVICE_URL']}")
    check(env["SIGNING_KEY_PARAMETER"] == f"/aws/reference/secretsmanager/image-pipeline-{env_name}-signing-key",
          f"SIGNING_KEY_PARAMETER {env['SIGNING_KEY_PARAMETER']}")
    check(env["SIGNING_KEY_ID"] == "k1" and env["SOURCE_PREFIX"] == "uploads/" and env["VARIANT_PREFIX"] == "variants/" and env["SOURCE_BUCKET"] == outputs["SourceBucketName"] and env["OUTPUT_BUCKET"] == outputs["OutputBucketName"],
          f"forwarder env {env}")
    check("SIGNING_KEY" not in env, "a signing key in the Lambda environment")
    print(f"  {stack}: function {fn_name}: provided.al2023, VPC, reserved concurrency 5, env wired")

    # Instance: AL2023 AMI from the SSM parameter, profile, launch template, subnet.
    instance = ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"][0]["Instances"][0]
    check(instance["State"]["Name"] == "running", f"instance {instance['State']}")
    ami = ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")["Parameter"]["Value"]
    check(instance["ImageId"] == ami, f"instance AMI {instance['ImageId']} is not the AL2023 parameter's {ami}")
    check(instance["InstanceType"] == "c7i.large", f"instance type {instance['InstanceType']}")
    check(instance["PrivateIpAddress"] == outputs["InstancePrivateIp"], "private IP output")
    # (moto ignores an instance's launch template: its security group, volumes and IMDS options
    # are checked statically, its UserData is read from the template's version below.)
    profile_name = resources["InstanceProfile"]["PhysicalResourceId"]
    check(instance.get("IamInstanceProfile", {}).get("Arn", "").endswith(f"/{profile_name}"),
          f"instance profile {instance.get('IamInstanceProfile')}")
    check("DaemonLaunchTemplate" in resources, "no launch template (IMDSv2, encrypted volumes)")
    check(resources["DaemonInstance"]["ResourceType"] == "AWS::EC2::Instance", "instance resource")
    check("DaemonGroup" not in resources, "an Auto Scaling group in single mode")
    stack_env = heredoc(launch_template_user_data(clients, resources), "/etc/ec2-service/stack.env")
    check("INTAKE_MODE=http\n" in stack_env and "FLEET_GROUP=\n" in stack_env, f"single-mode stack.env: {stack_env}")
    print(f"  {stack}: instance {instance['InstanceId']}: AL2023 {ami}, {instance['PrivateIpAddress']}, intake http")

    # Roles: the instance profile's role and the forwarder's role exist and are the stack's.
    profile = iam.get_instance_profile(InstanceProfileName=resources["InstanceProfile"]["PhysicalResourceId"])
    check([r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [resources["InstanceRole"]["PhysicalResourceId"]],
          "instance profile role")
    role_name = config["Role"].rsplit("/", 1)[1]
    check(role_name == resources["ForwarderRole"]["PhysicalResourceId"], f"function role {config['Role']}")
    for role in (resources["InstanceRole"]["PhysicalResourceId"], role_name):
        iam.get_role(RoleName=role)
        check(iam.list_role_policies(RoleName=role)["PolicyNames"], f"{role}: no inline policy")
        check(not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], f"{role}: a managed policy")
    print(f"  {stack}: roles {resources['InstanceRole']['PhysicalResourceId']}, {role_name}: inline policies only")
    check(config.get("CodeSize", 1) > 0, "function code")
    release = assert_release(clients, stack, outputs)
    assert_telemetry(clients, stack, env_name, outputs)
    assert_edges(clients, stack, env_name, outputs, resources, release[3], release[0])
    return outputs, resources, release[:3]


RELEASE_FILES = ["config.toml", "ec2-service", "ec2-service-lifecycle.service", "ec2-service-lifecycle.sh",
                 "ec2-service.service", "install-release.sh"]


def assert_release(clients, stack, outputs):
    """The release parameter names the uploaded release, whose SHA256SUMS matches it.
    Returns (prefix, manifest sha, key id, artifact bucket)."""
    cf, s3, ddb, sqs, lam, ec2, iam, ssm = clients[:8]
    release = ssm.get_parameter(Name=outputs["ReleaseParameterName"])["Parameter"]["Value"].split()
    check(len(release) == 3 and release[2] == "k1", f"release parameter {release}")
    prefix, manifest_sha = release[0], release[1]
    bucket = [p["ParameterValue"] for p in cf.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
              if p["ParameterKey"] == "ArtifactBucket"][0]
    manifest = s3.get_object(Bucket=bucket, Key=f"{prefix}SHA256SUMS")["Body"].read()
    check(hashlib.sha256(manifest).hexdigest() == manifest_sha, "SHA256SUMS does not match the release parameter")
    names = sorted(line.split()[1] for line in manifest.decode().splitlines())
    check(names == RELEASE_FILES, f"release files {names}")
    for line in manifest.decode().splitlines():
        digest, name = line.split()
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}{name}")["Body"].read()
        check(hashlib.sha256(body).hexdigest() == digest, f"{name} does not match SHA256SUMS")
    print(f"  {stack}: release {prefix} verified against the release parameter")
    return release + [bucket]


def assert_common_fleet(clients, stack, env_name, outputs, resources, subnets, sizes, max_receive_count):
    """Fleet mode as moto creates it: the group (name, sizes, subnets in two AZs, the launch
    template), its running instances with the template's UserData, the queue the daemons
    read, and no forwarder, mapping or single instance. sizes: (min, max, desired)."""
    cf, s3, ddb, sqs, lam, ec2, iam, ssm = clients[:8]
    autoscaling = clients[10]
    from moto.cloudformation.parsing import resource_class_from_type
    for name in ("ForwarderFunction", "ForwarderEventSource", "ForwarderRole", "DaemonInstance"):
        check(name not in resources, f"{stack}: {name} in fleet mode")
    try:
        lam.get_function(FunctionName=f"image-pipeline-{env_name}-forwarder")
        raise AssertionError(f"{stack}: a forwarder function in fleet mode")
    except lam.exceptions.ResourceNotFoundException:
        pass
    queue_url = outputs["JobQueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    check(not lam.list_event_source_mappings(EventSourceArn=attrs["QueueArn"])["EventSourceMappings"],
          f"{stack}: an event source mapping on the queue in fleet mode")
    check(attrs["VisibilityTimeout"] == "120", f"{stack}: visibility {attrs['VisibilityTimeout']}")
    redrive = json.loads(attrs["RedrivePolicy"])
    dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    check(redrive["deadLetterTargetArn"] == dlq_arn, f"{stack}: redrive {redrive}")
    if max_receive_count is not None:
        check(int(redrive["maxReceiveCount"]) == max_receive_count, f"{stack}: maxReceiveCount {redrive}")

    name = outputs["FleetGroupName"]
    check(name == f"image-pipeline-{env_name}-daemons", f"{stack}: group {name}")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    check((group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == sizes,
          f"{stack}: sizes {(group['MinSize'], group['MaxSize'], group['DesiredCapacity'])}, not {sizes}")
    check(sorted(group["VPCZoneIdentifier"].split(",")) == sorted(subnets), f"{stack}: group subnets {group['VPCZoneIdentifier']}")
    zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]}
    check(len(zones) == 2 and set(group["AvailabilityZones"]) == zones, f"{stack}: zones {group['AvailabilityZones']}")
    template_id = resources["DaemonLaunchTemplate"]["PhysicalResourceId"]
    check(group["LaunchTemplate"]["LaunchTemplateId"] == template_id, f"{stack}: launch template {group['LaunchTemplate']}")
    user_data = launch_template_user_data(clients, resources)
    stack_env = dict(line.split("=", 1) for line in heredoc(user_data, "/etc/ec2-service/stack.env").splitlines())
    wanted = {"INTAKE_MODE": "sqs", "QUEUE_URL": queue_url, "FLEET_GROUP": name, "LIFECYCLE_HOOK": "drain-before-terminate",
              "SOURCE_PREFIX": "uploads/", "VISIBILITY_TIMEOUT_SECS": "120", "SOURCE_SUFFIXES": ".jpg,.jpeg,.png,.webp,.heic"}
    check({k: stack_env.get(k) for k in wanted} == wanted, f"{stack}: stack.env {stack_env}")
    check("--logical-resource-id DaemonGroup " in user_data, f"{stack}: the first boot does not signal the group")
    ami = ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")["Parameter"]["Value"]
    import base64
    members = [i["InstanceId"] for i in group["Instances"]]
    check(len(members) == sizes[2], f"{stack}: {len(members)} instances, not {sizes[2]}")
    for instance in ec2.describe_instances(InstanceIds=members)["Reservations"][0]["Instances"]:
        check(instance["State"]["Name"] == "running" and instance["SubnetId"] in subnets, f"{stack}: instance {instance}")
        check(instance["ImageId"] == ami and instance["InstanceType"] == "c7i.large", f"{stack}: {instance['ImageId']} {instance['InstanceType']}")
        data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]["Value"]
        check(base64.b64decode(data).decode() == user_data, f"{stack}: {instance['InstanceId']} runs another UserData")
    profile = iam.get_instance_profile(InstanceProfileName=resources["InstanceProfile"]["PhysicalResourceId"])
    role = resources["InstanceRole"]["PhysicalResourceId"]
    check([r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [role], "instance profile role")
    check(iam.list_role_policies(RoleName=role)["PolicyNames"] and not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"],
          f"{role}: not inline only")
    # What moto leaves out (the template rules check these): no scaling policy, no hook.
    check(resource_class_from_type("AWS::AutoScaling::ScalingPolicy") is None,
          "moto now models AWS::AutoScaling::ScalingPolicy: check the policy in the deployed stack")
    check(not autoscaling.describe_policies(AutoScalingGroupName=name)["ScalingPolicies"], "moto created a scaling policy")
    check(not autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"],
          "moto now creates the group's lifecycle hooks: drop the stand-in put in run_watcher")
    print(f"  {stack}: group {name}: {sizes[0]}-{sizes[1]}, {len(members)} running from the launch template in "
          f"{sorted(zones)}; UserData: sqs intake, the queue, the group and its hook, signal DaemonGroup")
    print(f"  {stack}: queue visibility 120 s, DLQ after {redrive['maxReceiveCount']} receives; no forwarder, "
          "no mapping, no single instance; role {role} inline only")
    return group


def run_watcher(endpoint, clients, fake, work, group, instance_id, role):
    """The scale-in watcher as a fleet instance's install left it (fake root), against the
    IMDSv2 stand-in and moto's Auto Scaling: no state yet, InService (its 2 s tokens renewed),
    Terminated while Auto Scaling refuses the action (no hook yet), then the hook as the
    template declares it."""
    autoscaling = clients[10]
    state, actions = os.path.join(work, "lifecycle-state"), os.path.join(work, "lifecycle-actions.jsonl")
    log_path = os.path.join(work, "metadata.log")
    standin = subprocess.Popen(
        [VENV_PYTHON, os.path.join(ROOT, "scripts", "lib", "box_metadata.py"), "--port", "0", "--moto", endpoint,
         "--instance-id", instance_id, "--role", role, "--region", REGION, "--account", "123456789012",
         "--signals", os.path.join(work, "signals.jsonl"), "--lifecycle-state", state, "--lifecycle-actions", actions],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (match := re.search(r"on (http://127\.0\.0\.1:\d+)", open(log_path).read())):
            check(time.monotonic() < deadline and standin.poll() is None, f"the stand-in did not start: {open(log_path).read()}")
            time.sleep(0.1)
        url = match.group(1)
        bin_dir = os.path.join(work, "watcher-bin")
        os.makedirs(bin_dir, exist_ok=True)
        calls = os.path.join(work, "watcher-calls")
        with open(os.path.join(bin_dir, "systemctl"), "w") as f:
            # The drain takes a moment; the watcher must wait for it.
            f.write(f'#!/bin/sh\necho "$(date +%s.%N) systemctl $*" >> {calls}\nsleep 1\n')
        os.chmod(os.path.join(bin_dir, "systemctl"), 0o755)
        env = dict(os.environ, PATH=f"{bin_dir}:{os.path.join(ROOT, '.venv', 'bin')}:{os.environ['PATH']}",
                   EC2_SERVICE_INSTALL_ROOT=fake, AWS_EC2_METADATA_SERVICE_ENDPOINT=url + "/",
                   AWS_ENDPOINT_URL=endpoint, AWS_ENDPOINT_URL_AUTO_SCALING=url, AWS_DEFAULT_REGION=REGION,
                   LIFECYCLE_POLL_SECS="0.2", LIFECYCLE_TOKEN_TTL_SECS="2")
        watcher_log = os.path.join(work, "watcher.log")
        watcher = subprocess.Popen(["bash", os.path.join(fake, "usr", "local", "sbin", "ec2-service-lifecycle")], env=env,
                                   stdout=open(watcher_log, "w"), stderr=subprocess.STDOUT)
        time.sleep(1.5)
        check(watcher.poll() is None, f"the watcher exited with no state published: {open(watcher_log).read()}")
        with open(state, "w") as f:
            f.write("InService\n")
        time.sleep(3)
        check(watcher.poll() is None and not os.path.exists(calls), f"the watcher acted on InService: {open(watcher_log).read()}")
        with open(state, "w") as f:
            f.write("Terminated\n")
        deadline = time.monotonic() + 20
        while "CompleteLifecycleAction refused" not in open(log_path).read():
            check(time.monotonic() < deadline and watcher.poll() is None,
                  f"no refused attempt before the hook exists: {open(watcher_log).read()}")
            time.sleep(0.2)
        for hook in lifecycle_hooks():
            autoscaling.put_lifecycle_hook(AutoScalingGroupName=group, **hook)
        status = watcher.wait(timeout=30)
        out = open(watcher_log).read()
        check(status == 0, f"the watcher exited {status}: {out}")
        recorded = [json.loads(line) for line in open(actions)]
        check(len(recorded) == 1, f"lifecycle actions {recorded}")
        action = recorded[0]
        wanted = {"AutoScalingGroupName": group, "LifecycleHookName": "drain-before-terminate", "InstanceId": instance_id,
                  "LifecycleActionResult": "CONTINUE"}
        check({k: action.get(k) for k in wanted} == wanted, f"lifecycle action {action}")
        stops = [line.split() for line in open(calls)]
        check([line[1:] for line in stops] == [["systemctl", "stop", "ec2-service.service"]], f"systemctl calls {stops}")
        from datetime import datetime
        completed = datetime.fromisoformat(action["ReceivedAt"]).timestamp()
        check(float(stops[0][0]) + 1 <= completed, "the action was completed before the daemon had stopped")
        requests = open(log_path).read()
        tokens = requests.count("PUT /latest/api/token")
        check(tokens >= 3, f"{tokens} IMDS tokens over the run: the 2 s tokens were not renewed")
        check(not re.search(r'"GET /latest/[^"]*" 401', requests), "the watcher used an expired IMDS token")
        for line in ("target lifecycle state: InService", "target lifecycle state: Terminated", "lifecycle action completed"):
            check(line in out, f"the watcher did not log {line!r}: {out}")
        print(f"  watcher on {instance_id}: waited through no state and InService ({tokens} IMDSv2 tokens), on "
              "Terminated stopped ec2-service, retried while Auto Scaling refused (no hook), then completed "
              "drain-before-terminate with CONTINUE")
    finally:
        os.killpg(standin.pid, signal.SIGTERM)
        standin.wait(timeout=10)


def assert_telemetry(clients, stack, env_name, outputs):
    """CloudWatch: the daemon's log group (name, retention) and the dashboard."""
    logs, cloudwatch = clients[8], clients[9]
    group = outputs["DaemonLogGroupName"]
    check(group == f"/image-pipeline/{env_name}/ec2-service", f"daemon log group {group}")
    found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    check([g["logGroupName"] for g in found] == [group], f"log groups {found}")
    check(found[0].get("retentionInDays") == 365, f"retention {found[0].get('retentionInDays')}")
    dashboard = cloudwatch.get_dashboard(DashboardName=outputs["DashboardName"])
    body = json.loads(dashboard["DashboardBody"])
    metrics = {row[1] for w in body["widgets"] for row in w["properties"].get("metrics", []) if row[0] != "..."}
    check(metrics == {"JobsFinished", "RenderSeconds", "QueueDepth", "OldestWaitingSeconds", "SourceBytes",
                      "ScratchFreeBytes"}, f"dashboard metrics {metrics}")
    check(all(f":alarm:{stack}-" in a for w in body["widgets"] if w["type"] == "alarm" for a in w["properties"]["alarms"]),
          "dashboard alarms not named after the stack")
    print(f"  {stack}: log group {group} (365 days), dashboard {outputs['DashboardName']} ({len(body['widgets'])} widgets)")


INTERFACE_ENDPOINTS = {"ssm", "ssmmessages", "ec2messages", "secretsmanager", "logs", "monitoring", "sqs",
                       "cloudformation"}
GATEWAY_ENDPOINTS = {"s3", "dynamodb"}


def assert_own_network(clients, outputs, resources):
    """CreateNetwork true, as moto creates it: the VPC, two private subnets in two AZs, one
    route table with no way out, the gateway and interface endpoints, the flow log; the
    instance and the forwarder placed in it."""
    cf, s3, ddb, sqs, lam, ec2, iam, ssm = clients[:8]
    vpc_id = outputs["NetworkVpcId"]
    check(vpc_id == resources["Vpc"]["PhysicalResourceId"], f"NetworkVpcId {vpc_id}")
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    check(vpc["CidrBlock"] == "10.42.0.0/16", f"VPC CIDR {vpc['CidrBlock']}")
    # (moto ignores EnableDnsHostnames, which the endpoints' private DNS needs: template rules.)
    subnet_ids = outputs["PrivateSubnetIds"].split(",")
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    check(sorted(s["CidrBlock"] for s in subnets) == ["10.42.0.0/24", "10.42.1.0/24"], f"subnets {subnets}")
    check(len({s["AvailabilityZone"] for s in subnets}) == 2, "the subnets are not in two AZs")
    check(all(s["VpcId"] == vpc_id and not s["MapPublicIpOnLaunch"] for s in subnets), "a public subnet")
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    check(not igws["InternetGateways"], "an internet gateway on the stack's VPC")
    check(not ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"], "a NAT gateway")
    table = ec2.describe_route_tables(RouteTableIds=[resources["PrivateRouteTable"]["PhysicalResourceId"]])["RouteTables"][0]
    # moto keeps a stack's SubnetRouteTableAssociation apart from the route table (it does
    # not show in describe-route-tables): that they were created is what it can tell.
    for name in ("PrivateSubnetARouteTable", "PrivateSubnetBRouteTable"):
        check(resources[name]["ResourceStatus"] == "CREATE_COMPLETE", f"{name}: {resources[name]}")
    for route in table["Routes"]:
        check(not route.get("GatewayId", "local").startswith("igw-") and "NatGatewayId" not in route,
              f"a route out of the VPC: {route}")
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    by_service = {e["ServiceName"].rsplit(".", 1)[1]: e for e in endpoints}
    check(set(by_service) == INTERFACE_ENDPOINTS | GATEWAY_ENDPOINTS, f"endpoints {sorted(by_service)}")
    endpoint_group = resources["EndpointSecurityGroup"]["PhysicalResourceId"]
    for name in GATEWAY_ENDPOINTS:
        e = by_service[name]
        check(e["VpcEndpointType"] == "Gateway" and e["RouteTableIds"] == [table["RouteTableId"]], f"{name}: {e}")
    for name in INTERFACE_ENDPOINTS:
        e = by_service[name]
        check(e["VpcEndpointType"] == "Interface" and e["PrivateDnsEnabled"], f"{name}: {e}")
        check(sorted(e["SubnetIds"]) == sorted(subnet_ids), f"{name}: subnets {e['SubnetIds']}")
        check([g["GroupId"] for g in e["Groups"]] == [endpoint_group], f"{name}: groups {e['Groups']}")
    group = ec2.describe_security_groups(GroupIds=[endpoint_group])["SecurityGroups"][0]
    check([(p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in group["IpPermissions"]]
          == [(443, 443, ["10.42.0.0/16"])], f"endpoint group ingress {group['IpPermissions']}")
    flow = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]
    check(len(flow) == 1 and flow[0]["TrafficType"] == "REJECT"
          and flow[0]["LogGroupName"] == resources["FlowLogGroup"]["PhysicalResourceId"], f"flow logs {flow}")
    instance = ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"][0]["Instances"][0]
    check(instance["SubnetId"] == subnet_ids[0], f"instance in {instance['SubnetId']}")
    fn = lam.get_function_configuration(FunctionName=outputs["ForwarderFunctionName"])
    check(sorted(fn["VpcConfig"]["SubnetIds"]) == sorted(subnet_ids), f"forwarder subnets {fn['VpcConfig']}")
    for name in ("InstanceSecurityGroup", "ForwarderSecurityGroup"):
        sg = ec2.describe_security_groups(GroupIds=[resources[name]["PhysicalResourceId"]])["SecurityGroups"][0]
        check(sg["VpcId"] == vpc_id, f"{name} in {sg['VpcId']}")
    print(f"  pipe-own: VPC {vpc_id} 10.42.0.0/16, subnets in {sorted(s['AvailabilityZone'] for s in subnets)}, "
          f"no internet or NAT gateway, {len(GATEWAY_ENDPOINTS)} gateway + {len(INTERFACE_ENDPOINTS)} interface "
          "endpoints, REJECT flow log; instance and forwarder inside")


def assert_edges(clients, stack, env_name, outputs, resources, artifact_bucket, prefix):
    """The edges as far as moto creates them (see the module docs for the stand-ins)."""
    cf, s3, ddb, sqs, lam, ec2, iam, ssm = clients[:8]
    check(outputs["WebUrl"] == outputs["PublicBaseUrl"] == f"https://{DOMAIN_STANDIN}/", f"WebUrl {outputs['WebUrl']}")
    check(outputs["UploadApiUrl"] == API_STANDIN, f"UploadApiUrl {outputs['UploadApiUrl']}")
    check(outputs["JwtIssuerUrl"] == f"https://cognito-idp.{REGION}.amazonaws.com/standin-UserPool", outputs["JwtIssuerUrl"])
    check(outputs["SignInUrl"] == f"https://standin-UserPoolDomain.auth.{REGION}.amazoncognito.com", outputs["SignInUrl"])
    fn_name = outputs["UploadApiFunctionName"]
    check(fn_name == f"image-pipeline-{env_name}-upload-api", f"upload API function {fn_name}")
    fn = lam.get_function(FunctionName=fn_name)
    config = fn["Configuration"]
    check(config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap", "upload API runtime/handler")
    check(not (config.get("VpcConfig") or {}).get("SubnetIds"), "the upload API is in a VPC")
    check(fn.get("Concurrency", {}).get("ReservedConcurrentExecutions") == 10, f"upload API concurrency {fn.get('Concurrency')}")
    env = config["Environment"]["Variables"]
    wanted = {"TABLE": outputs["TableName"], "SOURCE_BUCKET": outputs["SourceBucketName"], "SOURCE_PREFIX": "uploads/",
              "PUBLIC_BASE_URL": f"https://{DOMAIN_STANDIN}/", "MAX_SOURCE_BYTES": "209715200"}
    check({k: env.get(k) for k in wanted} == wanted, f"upload API env {env}")
    role = config["Role"].rsplit("/", 1)[1]
    check(role == resources["UploadApiRole"]["PhysicalResourceId"], f"upload API role {role}")
    check(iam.list_role_policies(RoleName=role)["PolicyNames"] and
          not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], f"{role}: not inline only")
    code = s3.head_object(Bucket=artifact_bucket, Key=f"{prefix}upload-api.zip")
    check(code["ContentLength"] > 0, "no upload-api.zip in the release")
    table = ddb.describe_table(TableName=outputs["TableName"])["Table"]
    index = [i for i in table.get("GlobalSecondaryIndexes", []) if i["IndexName"] == "ByOwner"]
    check(index and index[0]["KeySchema"] == [{"AttributeName": "Owner", "KeyType": "HASH"},
                                              {"AttributeName": "UploadedAt", "KeyType": "RANGE"}], f"ByOwner index {index}")
    print(f"  {stack}: upload API {fn_name}: provided.al2023, no VPC, reserved concurrency 10, env wired; table index ByOwner")
    web = outputs["WebBucketName"]
    check(web == f"image-pipeline-{env_name}-web-123456789012-{REGION}", f"web bucket {web}")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=web).get("Contents", [])}
    check(keys >= {"index.html", "app.js", "blurhash.js", "style.css", "config.js"}, f"web bucket holds {sorted(keys)}")
    page = s3.get_object(Bucket=web, Key="index.html")
    check(page.get("CacheControl") == "no-cache", f"index.html Cache-Control {page.get('CacheControl')}")
    config_js = s3.get_object(Bucket=web, Key="config.js")["Body"].read().decode()
    for value in (API_STANDIN, outputs["JwtIssuerUrl"], outputs["WebClientId"], f"{outputs['SignInUrl']}/oauth2/token"):
        check(value in config_js, f"config.js lacks {value}: {config_js}")
    print(f"  {stack}: web page and config.js (API, issuer, client, hosted sign-in) in {web}, no-cache")
    user_data = launch_template_user_data(clients, resources)
    check(f"PUBLIC_BASE_URL=https://{DOMAIN_STANDIN}/" in heredoc(user_data, "/etc/ec2-service/stack.env"),
          "stack.env does not give the daemon the distribution's URL")
    print(f"  {stack}: the daemon's stack.env names the distribution's URL (PUBLIC_BASE_URL)")


def main():
    work = tempfile.mkdtemp(prefix="moto-deploy-")
    moto, endpoint = start_moto(os.path.join(work, "moto.log"))
    try:
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
                   AWS_ENDPOINT_URL=endpoint)
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        session = boto3.session.Session(region_name=REGION)
        clients = tuple(
            session.client(name, endpoint_url=endpoint)
            for name in ("cloudformation", "s3", "dynamodb", "sqs", "lambda", "ec2", "iam", "ssm", "logs", "cloudwatch",
                         "autoscaling")
        )
        cf, s3, ddb, sqs, lam, ec2, iam, ssm = clients[:8]

        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
            for i, az in ((1, "a"), (2, "b"))
        ]
        network = {"CreateNetwork": "false", "VpcId": vpc, "InstanceSubnetId": subnets[0],
                   "LambdaSubnetIds": ",".join(subnets)}
        zip_path, daemon = make_artifacts(work, "#!/bin/sh\necho stand-in daemon 1\n")
        print(f"  moto models none of {', '.join(moto_template(os.path.join(work, 'probe.json'))[1])}: "
              f"deployed with stand-ins for their Ref/GetAtt ({DOMAIN_STANDIN}, {API_STANDIN})")

        # 1. sqs mode
        printed, _ = deploy(endpoint, env, "pipe-sqs", zip_path, daemon, {**network, "EnvName": "qa"})
        outputs, resources, release = assert_common(clients, "pipe-sqs", "qa", printed)
        check(s3.get_public_access_block(Bucket=ARTIFACT_BUCKET)["PublicAccessBlockConfiguration"]["BlockPublicAcls"],
              "artifact bucket created without a public access block")
        queue_url = outputs["JobQueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        fn_timeout = lam.get_function_configuration(FunctionName=outputs["ForwarderFunctionName"])["Timeout"]
        check(int(attrs["VisibilityTimeout"]) >= 6 * fn_timeout, f"visibility {attrs['VisibilityTimeout']} < 6 x {fn_timeout}")
        check(int(attrs["MaximumMessageSize"]) >= 65536, "queue cannot hold a 64 KB S3 event")
        redrive = attrs["RedrivePolicy"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        check(dlq_arn in redrive and '"maxReceiveCount": 5' in redrive.replace('"maxReceiveCount":5', '"maxReceiveCount": 5'),
              f"redrive policy {redrive}")
        mappings = lam.list_event_source_mappings(FunctionName=outputs["ForwarderFunctionName"])["EventSourceMappings"]
        check(len(mappings) == 1 and mappings[0]["EventSourceArn"] == attrs["QueueArn"], f"event source mappings {mappings}")
        check(mappings[0].get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "no partial batch responses")
        print(f"  pipe-sqs: queue -> DLQ after 5 receives, visibility {attrs['VisibilityTimeout']} s, mapping with partial batch responses")

        # The instance's first install, as its UserData runs it (moto stands in for AWS).
        secret = "Zq3" * 20
        secret_arn = boto3.session.Session(region_name=REGION).client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name="image-pipeline-qa-signing-key", SecretString=secret)["ARN"]
        result, fake = first_boot_install(endpoint, launch_template_user_data(clients, resources), work, secret_arn)
        check(result.returncode == 0, f"ec2-service-install failed:\n{result.stdout}{result.stderr}")
        etc = os.path.join(fake, "etc", "ec2-service")
        check(open(os.path.join(etc, "secrets.env")).read() == f"EC2_SERVICE__SIGNING__KEYS=k1:{secret}\n", "secrets.env")
        check(os.stat(os.path.join(etc, "secrets.env")).st_mode & 0o777 == 0o600, "secrets.env mode")
        config = open(os.path.join(etc, "config.toml")).read()
        check(f'source_bucket = "{outputs["SourceBucketName"]}"' in config and f'table = "{outputs["TableName"]}"' in config,
              "config.toml does not name the stack's bucket and table")
        check('namespace = "ImagePipeline"' in config and 'stack = "pipe-sqs"' in config,
              "config.toml does not publish the metrics under the stack's name")
        check(open(os.path.join(fake, "usr", "local", "bin", "ec2-service")).read() == open(daemon).read(), "binary")
        print("  pipe-sqs: ec2-service-install from the UserData fetched, verified and installed the release")

        # A release object changed in the bucket after the deploy: refused, nothing installed.
        prefix = release[0]
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"{prefix}ec2-service", Body=b"#!/bin/sh\necho tampered\n")
        result, fake = first_boot_install(endpoint, launch_template_user_data(clients, resources), work, secret_arn)
        check(result.returncode != 0, "ec2-service-install installed a tampered release")
        check("stand-in daemon 1" in open(os.path.join(fake, "usr", "local", "bin", "ec2-service")).read(),
              "a tampered binary was installed")
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"{prefix}ec2-service", Body=open(daemon, "rb").read())
        print("  pipe-sqs: a release changed in the bucket is refused (SHA256SUMS), nothing replaced")

        # 2. direct mode
        printed, _ = deploy(endpoint, env, "pipe-dir", zip_path, daemon, {**network, "EnvName": "qb", "TriggerMode": "direct"})
        dir_outputs, dir_resources, _ = assert_common(clients, "pipe-dir", "qb", printed)
        check("JobQueueUrl" not in dir_outputs and "JobQueue" not in dir_resources, "a job queue in direct mode")
        check(not lam.list_event_source_mappings(FunctionName=dir_outputs["ForwarderFunctionName"])["EventSourceMappings"],
              "an SQS mapping in direct mode")
        print("  pipe-dir: no job queue, no mapping (S3 invokes the function; DLQ as on-failure destination)")

        # 3. what a newcomer runs: only the stack's name and a region (the stand-in artifacts
        # and the endpoint are the test's). The stack makes its own network.
        printed, _ = deploy(endpoint, env, "pipe-own", zip_path, daemon, {}, artifact_bucket=None)
        own_outputs, own_resources, _ = assert_common(clients, "pipe-own", "dev", printed)
        assert_own_network(clients, own_outputs, own_resources)
        check(s3.head_bucket(Bucket=f"image-pipeline-artifacts-123456789012-{REGION}") is not None,
              "no default artifact bucket")

        # 4. a new daemon release on the sqs stack: same instance, reinstalled through SSM.
        zip_path, daemon = make_artifacts(work, "#!/bin/sh\necho stand-in daemon 2\n")
        printed, log = deploy(endpoint, env, "pipe-sqs", zip_path, daemon, {})
        new_outputs = outputs_of(cf, "pipe-sqs")
        check(new_outputs["InstanceId"] == outputs["InstanceId"], "the update replaced the instance")
        new_release = ssm.get_parameter(Name=outputs["ReleaseParameterName"])["Parameter"]["Value"].split()
        check(new_release[0] != release[0] and new_release[1] != release[1], "the release parameter did not change")
        code_key = [p["ParameterValue"] for p in cf.describe_stacks(StackName="pipe-sqs")["Stacks"][0]["Parameters"]
                    if p["ParameterKey"] == "LambdaZipKey"][0]
        check(code_key == f"{new_release[0]}bootstrap.zip", f"Lambda code key {code_key}")
        check(new_outputs["TableName"] == outputs["TableName"], "the update replaced the table")
        check(new_outputs["SourceBucketName"] == outputs["SourceBucketName"], "the update lost EnvName")
        fn_config = lam.get_function_configuration(FunctionName=outputs["ForwarderFunctionName"])
        check(len(fn_config["VpcConfig"]["SubnetIds"]) == 2, "the update lost the Lambda subnets")
        check(f"reinstalled release" in log, "no reinstall after the update:\n" + log)
        commands = ssm.list_commands(InstanceId=outputs["InstanceId"])["Commands"]
        check(any(c["Parameters"].get("commands") == ["/usr/local/sbin/ec2-service-install"] for c in commands),
              f"no ec2-service-install command sent: {commands}")
        print(f"  pipe-sqs update: release {new_release[0]}, same instance, reinstalled through SSM Run Command")

        # 5. the same release again: nothing to reinstall.
        printed, log = deploy(endpoint, env, "pipe-sqs", zip_path, daemon, {})
        check("release unchanged" in log, "a redeploy of the same release reinstalled:\n" + log)
        print("  pipe-sqs redeploy of the same release: no change, no reinstall")

        # 6. fleet mode in your network.
        fleet = {"subnets": subnets, "sizes": (1, 3, 2), "max_receive_count": 8}
        printed, _ = deploy(endpoint, env, "pipe-fleet", zip_path, daemon,
                            {"CreateNetwork": "false", "VpcId": vpc, "FleetSubnetIds": ",".join(subnets), "EnvName": "qf",
                             "DeploymentMode": "fleet", "FleetMinSize": "1", "FleetMaxSize": "3", "FleetDesiredCapacity": "2"})
        fleet_outputs, fleet_resources, _ = assert_common(clients, "pipe-fleet", "qf", printed, fleet=fleet)
        fleet_secret = boto3.session.Session(region_name=REGION).client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name="image-pipeline-qf-signing-key", SecretString=secret)["ARN"]
        result, fleet_fake = first_boot_install(endpoint, launch_template_user_data(clients, fleet_resources), work,
                                                fleet_secret, name="fleet-instance")
        check(result.returncode == 0, f"ec2-service-install on a fleet instance failed:\n{result.stdout}{result.stderr}")
        dropin = open(os.path.join(fleet_fake, "etc", "systemd", "system", "ec2-service.service.d", "intake.conf")).read()
        check(f"Environment=EC2_SERVICE__INTAKE__QUEUE_URL={fleet_outputs['JobQueueUrl']}\n" in dropin
              and "Environment=EC2_SERVICE__INTAKE__MODE=sqs\n" in dropin, f"intake drop-in: {dropin}")
        check("systemctl enable ec2-service-lifecycle.service" in open(os.path.join(work, "fleet-instance-calls")).read(),
              "the watcher was not enabled")
        print("  pipe-fleet: a fleet instance's first install: the release, the intake drop-in (sqs, the stack's "
              "queue), the scale-in watcher enabled")
        group = outputs_of(cf, "pipe-fleet")["FleetGroupName"]
        members = clients[10].describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"]
        run_watcher(endpoint, clients, fleet_fake, work, group, members[0]["InstanceId"],
                    fleet_resources["InstanceRole"]["PhysicalResourceId"])

        # 7. the move from one instance to the fleet: pipe-own (its own network) updated.
        printed, _ = deploy(endpoint, env, "pipe-own", zip_path, daemon, {"DeploymentMode": "fleet"}, artifact_bucket=None)
        moved_outputs = outputs_of(cf, "pipe-own")
        own_subnets = own_outputs["PrivateSubnetIds"].split(",")
        # (moto applies no RedrivePolicy change on an update: the count stays the single mode's.)
        moved_outputs, moved_resources, _ = assert_common(
            clients, "pipe-own", "dev", printed, fleet={"subnets": own_subnets, "sizes": (1, 4, 1), "max_receive_count": None})
        for key in ("JobQueueUrl", "SourceBucketName", "OutputBucketName", "TableName", "DeadLetterQueueUrl"):
            check(moved_outputs[key] == own_outputs[key], f"the move changed {key}")
        old = ec2.describe_instances(InstanceIds=[own_outputs["InstanceId"]])["Reservations"][0]["Instances"][0]
        check(old["State"]["Name"] in ("shutting-down", "terminated"), f"the single instance is {old['State']}")
        endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [own_outputs["NetworkVpcId"]]}])["VpcEndpoints"]
        check(any(e["ServiceName"].endswith(".autoscaling") for e in endpoints), "no Auto Scaling endpoint in the own network")
        print("  pipe-own moved to fleet: the same queue, buckets and table; the group in the private subnets, "
              "the Auto Scaling endpoint; forwarder, mapping and single instance gone")
        print("moto-deploy: 4 stacks (sqs and direct in your network, sqs in its own, fleet in yours), first-boot "
              "installs (single and fleet) and a refused tampered release, the scale-in watcher, 1 update with "
              "reinstall, 1 no-op redeploy, 1 move to fleet mode: all assertions hold")
    except BaseException:
        # Whatever moto said last (an error of moto's own shows as a 500 to the CLI).
        lines = open(os.path.join(work, "moto.log"), errors="replace").read().splitlines()
        sys.stderr.write("--- moto log (last 60 lines)\n" + "\n".join(lines[-60:]) + "\n")
        raise
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
