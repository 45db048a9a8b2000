"""Parsing ARNs, with a message that says which part is wrong.

parse_pool_arn(text) -> PoolArn   a Cognito user pool:
    arn:<partition>:cognito-idp:<region>:<account>:userpool/<region>_<id>
parse_sink_arn(text) -> SinkArn   an SQS queue, SNS topic, EventBridge bus or Kinesis stream:
    arn:<partition>:sqs:<region>:<account>:<queue>            (standard, or <name>.fifo)
    arn:<partition>:sns:<region>:<account>:<topic>            (standard, or <name>.fifo)
    arn:<partition>:events:<region>:<account>:event-bus/<name>
    arn:<partition>:kinesis:<region>:<account>:stream/<name>
"""

from __future__ import annotations

import re
from typing import cast

from runner.model import AwsSinkService, PoolArn, SinkArn

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# The region each partition's names start with (aws: anything that is not cn-/us-gov-).
_PARTITION_REGION_PREFIX = {"aws-cn": "cn-", "aws-us-gov": "us-gov-"}
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_ACCOUNT = re.compile(r"\d{12}")
_POOL_ID = re.compile(r"(?P<region>[a-z0-9-]+)_(?P<suffix>[0-9A-Za-z]+)")
_SHAPE = "arn:aws:cognito-idp:<region>:<12-digit account>:userpool/<region>_<id>"
IAM_ROLE_ARN = re.compile(r"arn:(?:aws|aws-cn|aws-us-gov):iam::\d{12}:role/[\w+=,.@/-]+")


# Each sink service: the resource's prefix, the name's characters and most length, and the
# shape a message shows. Names as the services document them.
_SINK_SHAPES: dict[str, tuple[str, re.Pattern[str], str]] = {
    "sqs": ("", re.compile(r"[A-Za-z0-9_-]{1,75}(?:\.fifo)?|[A-Za-z0-9_-]{1,80}"), "<queue>"),
    "sns": ("", re.compile(r"[A-Za-z0-9_-]{1,251}(?:\.fifo)?|[A-Za-z0-9_-]{1,256}"), "<topic>"),
    "events": ("event-bus/", re.compile(r"[A-Za-z0-9._/-]{1,256}"), "event-bus/<name>"),
    "kinesis": ("stream/", re.compile(r"[A-Za-z0-9_.-]{1,128}"), "stream/<name>"),
}
_SINK_SHAPE = "arn:aws:<sqs|sns|events|kinesis>:<region>:<12-digit account>:<resource>"


def parse_sink_arn(text: str) -> SinkArn:
    """The parsed sink ARN; ValueError naming the wrong part otherwise."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"{text!r} is not an ARN: expected {_SINK_SHAPE}")
    _, partition, service, region, account, resource = parts
    shape = _SINK_SHAPES.get(service)
    if shape is None:
        raise ValueError(
            f"ARN {text!r} is for service {service!r}: a sink ARN names an SQS queue (sqs), "
            "an SNS topic (sns), an EventBridge event bus (events) or a Kinesis stream (kinesis)"
        )
    _check_place(text, partition, region, account)
    prefix, name_form, resource_shape = shape
    name = resource[len(prefix) :] if resource.startswith(prefix) else None
    if name is None or not name_form.fullmatch(name):
        raise ValueError(
            f"resource {resource!r} in ARN {text!r} must be {resource_shape} "
            "(letters, digits and the characters the service allows in a name)"
        )
    return SinkArn(
        arn=text,
        partition=partition,
        service=cast(AwsSinkService, service),
        region=region,
        account=account,
        name=name,
    )


def _check_place(text: str, partition: str, region: str, account: str) -> None:
    """The partition, region and account of an ARN; ValueError naming the wrong one."""
    if partition not in PARTITIONS:
        raise ValueError(
            f"unknown partition {partition!r} in ARN {text!r} (expected aws, aws-cn or aws-us-gov)"
        )
    if not _REGION.fullmatch(region):
        raise ValueError(f"region {region!r} in ARN {text!r} is not a region name like us-west-2")
    expected_prefix = _PARTITION_REGION_PREFIX.get(partition)
    if expected_prefix and not region.startswith(expected_prefix):
        raise ValueError(f"region {region!r} is not in partition {partition!r} (ARN {text!r})")
    if partition == "aws" and region.startswith(("cn-", "us-gov-")):
        raise ValueError(
            f"region {region!r} belongs to another partition than 'aws' (ARN {text!r})"
        )
    if not _ACCOUNT.fullmatch(account):
        raise ValueError(f"account {account!r} in ARN {text!r} must be 12 digits")


def parse_pool_arn(text: str) -> PoolArn:
    """The parsed ARN; ValueError naming the wrong part otherwise."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"{text!r} is not an ARN: expected {_SHAPE}")
    _, partition, service, region, account, resource = parts
    if partition not in PARTITIONS:
        _check_place(text, partition, region, account)  # says what is wrong with it
    if service != "cognito-idp":
        raise ValueError(
            f"ARN {text!r} is for service {service!r}, not a Cognito user pool (cognito-idp)"
        )
    _check_place(text, partition, region, account)
    kind, _, pool_id = resource.partition("/")
    if kind != "userpool" or not pool_id:
        raise ValueError(f"resource {resource!r} in ARN {text!r} must be userpool/<region>_<id>")
    match = _POOL_ID.fullmatch(pool_id)
    if match is None:
        raise ValueError(
            f"user pool id {pool_id!r} in ARN {text!r} must look like {region}_<letters and digits>"
        )
    if match["region"] != region:
        raise ValueError(
            f"user pool id {pool_id!r} is in region {match['region']!r} but the ARN says {region!r}"
        )
    return PoolArn(arn=text, partition=partition, region=region, account=account, pool_id=pool_id)
