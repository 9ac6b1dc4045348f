"""What moto's CloudFormation leaves undone in a stack of cloudformation/template.yaml, done
the way the template declares it. Shared by tests/infra/moto_deploy.py and scripts/box.

moto 5.2.5 does not create AWS::SecretsManager::Secret (a ${SigningSecret} in the UserData
stays as it is), ignores a bucket's NotificationConfiguration, and ignores an Auto Scaling
group's LifecycleHookSpecificationList (its API has PutLifecycleHook).

    moto_stack.py notification QUEUE_ARN          # the source bucket's S3 -> SQS notification
                                                  #   (sqs mode), as put-bucket-notification-
                                                  #   configuration JSON, on stdout
    moto_stack.py complete-user-data FILE ARN     # the secret's ARN in the UserData moto
                                                  #   rendered; fails on any other ${...}
    moto_stack.py template FILE REGION            # the template as moto can deploy it (JSON):
                                                  #   stand-ins for what it does not model
"""

import json
import os
import re
import sys

from cfnlint.decode import decode

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "cloudformation", "template.yaml")


# moto models none of these resource types: their Ref and GetAtt get stand-ins.
UNMODELLED = ("AWS::CloudFront::", "AWS::Cognito::", "AWS::ApiGatewayV2::")
DOMAIN_STANDIN = "d111111abcdef8.cloudfront.net"


def api_standin(region):
    return f"https://standin-api.execute-api.{region}.amazonaws.com"


def moto_template(path, region):
    """The stack's template with every Ref and GetAtt of an unmodelled resource replaced by
    a stand-in, as JSON (which CloudFormation takes as well as YAML)."""
    from moto.cloudformation.parsing import resource_class_from_type

    template, errors = decode(TEMPLATE)
    if errors:
        raise SystemExit(f"cannot decode {TEMPLATE}: {errors}")
    unmodelled = {name for name, r in template["Resources"].items() if r["Type"].startswith(UNMODELLED)}
    for name in unmodelled:
        if resource_class_from_type(template["Resources"][name]["Type"]) is not None:
            raise SystemExit(f"moto now models {template['Resources'][name]['Type']}: deploy it for real")

    def standin(name, attribute=None):
        if attribute == "DomainName":
            return DOMAIN_STANDIN
        if attribute == "ApiEndpoint":
            return api_standin(region)
        return f"standin-{name}" + (f"-{attribute}" if attribute else "")

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in unmodelled:
                return standin(node["Ref"])
            if set(node) == {"Fn::GetAtt"}:
                name, attribute = node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".", 1)
                if name in unmodelled:
                    return standin(name, attribute)
            if set(node) == {"Fn::Sub"}:
                sub = node["Fn::Sub"]
                text, variables = (sub, None) if isinstance(sub, str) else (sub[0], sub[1])
                def replace(match):
                    name, _, attribute = match.group(1).partition(".")
                    return standin(name, attribute or None) if name in unmodelled else match.group(0)
                text = re.sub(r"\$\{([A-Za-z0-9.]+)\}", replace, text)
                return {"Fn::Sub": text if variables is None else [text, walk(variables)]}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    # Compact JSON without the checkov skips' prose. Over CloudFormation's 51,200 bytes for a
    # template body, scripts/deploy sends it through the artifact bucket (a TemplateURL,
    # which tests/infra/moto_server.py reads from moto's own S3), as it does for AWS.
    for resource in template["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
        if resource.get("Metadata") == {}:
            del resource["Metadata"]
    with open(path, "w") as f:
        json.dump(walk(template), f, separators=(",", ":"))
    return path, sorted(unmodelled)


def notification(queue_arn, source_prefix="uploads/"):
    """The template's QueueConfigurations (its UseSqs branch) with the queue's ARN and the
    stack's SourcePrefix, in the S3 API's form."""
    template, matches = decode(TEMPLATE)
    if matches:
        raise SystemExit(f"cannot decode {TEMPLATE}: {matches}")
    condition, sqs_branch, _ = template["Resources"]["SourceBucket"]["Properties"]["NotificationConfiguration"]["Fn::If"]
    assert condition == "UseSqs", condition
    configurations = []
    for entry in sqs_branch["QueueConfigurations"]:
        rules = []
        for rule in entry["Filter"]["S3Key"]["Rules"]:
            value = source_prefix if rule["Value"] == {"Ref": "SourcePrefix"} else rule["Value"]
            assert isinstance(value, str), f"unexpected filter value {rule['Value']}"
            rules.append({"Name": rule["Name"], "Value": value})
        configurations.append({"QueueArn": queue_arn, "Events": [entry["Event"]],
                               "Filter": {"Key": {"FilterRules": rules}}})
    return {"QueueConfigurations": configurations}


def lifecycle_hooks():
    """The fleet group's lifecycle hooks as the template declares them, in the form of
    PutLifecycleHook's arguments (without the group's name)."""
    template, matches = decode(TEMPLATE)
    if matches:
        raise SystemExit(f"cannot decode {TEMPLATE}: {matches}")
    hooks = []
    for spec in template["Resources"]["DaemonGroup"]["Properties"]["LifecycleHookSpecificationList"]:
        assert all(isinstance(v, (str, int)) for v in spec.values()), f"unexpected hook value {spec}"
        hooks.append({"LifecycleHookName": spec["LifecycleHookName"], "LifecycleTransition": spec["LifecycleTransition"],
                      "HeartbeatTimeout": int(spec["HeartbeatTimeout"]), "DefaultResult": spec["DefaultResult"]})
    return hooks


def complete_user_data(text, secret_arn):
    """The UserData with the secret's ARN where moto left ${SigningSecret}."""
    text = text.replace("${SigningSecret}", secret_arn)
    left = sorted(set(re.findall(r"\$\{[A-Za-z][A-Za-z0-9:.]*\}", text)))
    if left:
        raise SystemExit(f"moto left unresolved references in the UserData: {left}")
    return text


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "notification":
        json.dump(notification(sys.argv[2]), sys.stdout)
    elif len(sys.argv) == 4 and sys.argv[1] == "complete-user-data":
        with open(sys.argv[2]) as f:
            text = complete_user_data(f.read(), sys.argv[3])
        with open(sys.argv[2], "w") as f:
            f.write(text)
    elif len(sys.argv) == 4 and sys.argv[1] == "template":
        moto_template(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
