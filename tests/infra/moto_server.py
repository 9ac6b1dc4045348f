"""moto's server (the pinned moto[server] of tests/infra/requirements.txt) with two fixes to
its CloudFormation change sets, which `aws cloudformation deploy` uses; everything else is
moto as it is.

1. moto 5.2.5 resolves a stack's Outputs when a stack is created or updated directly, but not
   when a change set is executed: such a stack comes back from DescribeStacks with no Outputs
   (a CREATE change set) or with the outputs of before (an UPDATE). ExecuteChangeSet here
   resolves them again, as CloudFormation does.
2. For a parameter given as UsePreviousValue (the CLI's deploy does that for every parameter
   it is not given), moto reuses the *resolved* value: a List parameter comes back as a Python
   list and an AWS::SSM::Parameter::Value parameter as the AMI id instead of the parameter's
   name, and both make moto fail with a 500. Here the previous value is the one given, as in
   CloudFormation (which re-resolves an SSM parameter at each update).
3. moto decides which resources an update modifies by comparing the new parameters with the
   ones given before, so a parameter that kept its default but now comes as UsePreviousValue
   looks changed, and moto "modifies" resources it cannot update (the instance), losing them.
   Here a parameter not given before compares as its default.
4. CloudFormation answers a change set without changes by creating it in FAILED state (which
   the CLI's --no-fail-on-empty-changeset accepts); moto refuses the request with "No updates
   are to be performed", which the CLI reports as an error. Here such a change set is created
   and executes as a no-op.

5. A template over 51,200 bytes reaches CloudFormation as a TemplateURL (the CLI's deploy
   uploads it first). Pointed at this server, the URL is path-style on a loopback address,
   which moto reads as a bucket named "127"; here a loopback URL is read path-style, as a
   "localhost" one already is.
6. moto has no Fn::Cidr, and reads Fn::GetAZs "" (the stack's own region) as us-east-1's
   zones. Here Fn::Cidr splits the block as CloudFormation does (COUNT blocks of BITS host
   bits, in order from its start), and an empty Fn::GetAZs names the stack's region's zones.
7. An update that changes a resource whose Condition is false (the Auto Scaling group of a
   stack in single mode, when the release it names changes) makes moto "modify" a resource
   that was never created, and fail with a 500. In CloudFormation such a resource does not
   exist and stays absent; here too. A resource whose Condition turns false in an update (the
   forwarder and the single instance, when a stack moves to fleet mode) is deleted, as
   CloudFormation does; moto keeps it. And a resource moto cannot update (a log group, when
   a parameter it names is passed again) is dropped from the stack by moto; here it stays.

    .venv/bin/python tests/infra/moto_server.py -H 127.0.0.1 -p 0   # same arguments as moto_server
"""

import ipaddress
from urllib.parse import urlparse

import moto.cloudformation.parsing as cloudformation_parsing
import moto.cloudformation.responses as cloudformation_responses

from moto.cloudformation.models import CloudFormationBackend, Stack
from moto.cloudformation.parsing import ResourceMap
from moto.cloudformation.responses import CloudFormationResponse
from moto.server import main

_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set_with_outputs(self, change_set_name, stack_name=None):
    _execute_change_set(self, change_set_name, stack_name)
    for change_set in self.change_sets.values():
        if change_set_name in (change_set.change_set_id, change_set.change_set_name):
            stack = self.stacks[change_set.stack_id]
            stack._parse_template()
            stack.output_map = stack._create_output_map()


def _previous_parameter_values(self):
    values = dict(self.resource_map.resolved_parameters)
    for key, slot in (self.template_dict.get("Parameters") or {}).items():
        kind = slot.get("Type", "String")
        if kind.startswith("AWS::SSM::Parameter::") or kind.startswith("List") or kind == "CommaDelimitedList":
            given = self.resource_map.input_parameters.get(key, slot.get("Default"))
            if given is not None:
                values[key] = given
    return values


_build_resource_diff = ResourceMap.build_resource_diff


def _build_resource_diff_with_defaults(self, other_template, parameters=None):
    given = self.input_parameters
    defaults = {
        key: str(slot["Default"])
        for key, slot in (self._template.get("Parameters") or {}).items()
        if "Default" in slot
    }
    self.input_parameters = {**defaults, **given}
    try:
        return _build_resource_diff(self, other_template, parameters)
    finally:
        self.input_parameters = given


_create_change_set = CloudFormationResponse.create_change_set


def _create_change_set_even_if_empty(self):
    self._validate_different_update = lambda *args, **kwargs: None
    return _create_change_set(self)


_get_stack_from_s3_url = cloudformation_responses.get_stack_from_s3_url


def _get_stack_from_loopback_url(template_url, account_id, partition):
    host = urlparse(template_url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        # "localhost" is the spelling moto reads path-style.
        template_url = template_url.replace(host, "localhost", 1)
    return _get_stack_from_s3_url(template_url, account_id=account_id, partition=partition)


cloudformation_responses.get_stack_from_s3_url = _get_stack_from_loopback_url

_clean_json = cloudformation_parsing.clean_json


def _clean_json_with_cidr_and_azs(resource_json, resources_map):
    if isinstance(resource_json, dict) and "Fn::Cidr" in resource_json:
        block, count, bits = (_clean_json_with_cidr_and_azs(v, resources_map) for v in resource_json["Fn::Cidr"])
        network = ipaddress.ip_network(block)
        subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
        return [str(next(subnets)) for _ in range(int(count))]
    if isinstance(resource_json, dict) and resource_json.get("Fn::GetAZs", None) == "":
        return [f"{resources_map._region_name}{zone}" for zone in "abc"]
    return _clean_json(resource_json, resources_map)


_parse_and_update_resource = cloudformation_parsing.parse_and_update_resource


def _parse_and_update_resource_if_it_exists(logical_id, resource_json, resources_map, account_id, region_name):
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        # Absent, or deleted after the update (_delete_resources_whose_condition_is_false).
        return resources_map._parsed_resources.get(logical_id)
    original = resources_map[logical_id]
    updated = _parse_and_update_resource(logical_id, resource_json, resources_map,
                                         account_id=account_id, region_name=region_name)
    return original if updated is None else updated


cloudformation_parsing.parse_and_update_resource = _parse_and_update_resource_if_it_exists

_update = ResourceMap.update


def _update_and_delete_what_is_no_longer_in_the_stack(self, template, parameters=None):
    _update(self, template, parameters)
    for logical_id, resource_json in template["Resources"].items():
        condition = resource_json.get("Condition")
        if condition and not self.lazy_condition_map[condition]:
            resource = self._parsed_resources.pop(logical_id, None)
            if resource is not None:
                self._delete_resource(resource, resource_json)

# clean_json calls itself through the module's name, so nested uses go through this too.
cloudformation_parsing.clean_json = _clean_json_with_cidr_and_azs
CloudFormationBackend.execute_change_set = _execute_change_set_with_outputs
CloudFormationResponse.create_change_set = _create_change_set_even_if_empty
Stack.stack_parameters = property(_previous_parameter_values)
ResourceMap.build_resource_diff = _build_resource_diff_with_defaults
ResourceMap.update = _update_and_delete_what_is_no_longer_in_the_stack

if __name__ == "__main__":
    main()
