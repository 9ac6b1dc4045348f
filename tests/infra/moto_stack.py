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
"""

import json
import os
import re
import sys

from cfnlint.decode import decode

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "cloudformation", "template.yaml")


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
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
