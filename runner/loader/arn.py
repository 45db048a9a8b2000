"""Parsing Amazon Cognito user pool ARNs, with a message that says which part is wrong.

`arn:<partition>:cognito-idp:<region>:<12-digit account>:userpool/<region>_<id>`
"""

from __future__ import annotations

import re

from runner.model import PoolArn

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# The region each partition's names start with (aws: anything that is not cn-/us-gov-).
_PARTITION_REGION_PREFIX = {"aws-cn": "cn-", "aws-us-gov": "us-gov-"}
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_ACCOUNT = re.compile(r"\d{12}")
_POOL_ID = re.compile(r"(?P<region>[a-z0-9-]+)_(?P<suffix>[0-9A-Za-z]+)")
_SHAPE = "arn:aws:cognito-idp:<region>:<12-digit account>:userpool/<region>_<id>"
IAM_ROLE_ARN = re.compile(r"arn:(?:aws|aws-cn|aws-us-gov):iam::\d{12}:role/[\w+=,.@/-]+")


def parse_pool_arn(text: str) -> PoolArn:
    """The parsed ARN; ValueError naming the wrong part otherwise."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"{text!r} is not an ARN: expected {_SHAPE}")
    _, partition, service, region, account, resource = parts
    if partition not in PARTITIONS:
        raise ValueError(
            f"unknown partition {partition!r} in ARN {text!r} (expected aws, aws-cn or aws-us-gov)"
        )
    if service != "cognito-idp":
        raise ValueError(
            f"ARN {text!r} is for service {service!r}, not a Cognito user pool (cognito-idp)"
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
