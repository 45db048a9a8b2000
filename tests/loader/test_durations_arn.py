"""Durations and Cognito user pool ARNs: accepted forms and the exact messages for the rest."""

from __future__ import annotations

import pytest

from runner._kits.durations import format_duration, parse_duration
from runner.loader.arn import parse_pool_arn
from runner.model import PoolArn


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("2d", 172800.0),
        ("1m30s250ms", 90.25),
        ("PT30S", 30.0),
        ("PT1H30M", 5400.0),
        ("P1D", 86400.0),
        ("P1W", 604800.0),
        ("P1DT12H", 129600.0),
        ("PT0.5S", 0.5),
        ("pt30s", 30.0),
        (" 30s ", 30.0),
    ],
)
def test_durations_accepted(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a duration must not be empty (examples: 500ms, 30s, 5m, 1h30m or ISO-8601 PT30S)"),
        ("30", "duration '30' needs a unit: write 30s, 30ms or 30m"),
        ("-5s", "duration '-5s' must not be negative"),
        (
            "5 minutes",
            "'5 minutes' is not a duration (examples: 500ms, 30s, 5m, 1h30m or ISO-8601 PT30S)",
        ),
        ("P", "'P' is not an ISO-8601 duration (examples: PT30S, PT1H30M, P1D)"),
        ("PT", "'PT' is not an ISO-8601 duration (examples: PT30S, PT1H30M, P1D)"),
        ("P1DT", "'P1DT' is not an ISO-8601 duration (examples: PT30S, PT1H30M, P1D)"),
        (
            "P1M",
            "ISO-8601 duration 'P1M' uses years or months, which have no fixed length: "
            "use days (P30D) or hours instead",
        ),
        (
            "P1Y2D",
            "ISO-8601 duration 'P1Y2D' uses years or months, which have no fixed length: "
            "use days (P30D) or hours instead",
        ),
        ("9" * 400 + "h", "duration '" + "9" * 400 + "h' is too long"),
    ],
)
def test_durations_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.25, 1.0, 1.5, 300.0, 90.0)] == [
        "250ms",
        "1s",
        "1.5s",
        "5m",
        "90s",
    ]


GOOD = "arn:aws:cognito-idp:us-west-2:043455440429:userpool/us-west-2_fak3p001B"


def test_pool_arn_parsed() -> None:
    assert parse_pool_arn(GOOD) == PoolArn(
        arn=GOOD,
        partition="aws",
        region="us-west-2",
        account="043455440429",
        pool_id="us-west-2_fak3p001B",
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws-cn:cognito-idp:cn-north-1:043455440429:userpool/cn-north-1_abc123",
        "arn:aws-us-gov:cognito-idp:us-gov-west-1:043455440429:userpool/us-gov-west-1_Abc",
        "arn:aws:cognito-idp:ap-southeast-2:043455440429:userpool/ap-southeast-2_x9",
    ],
)
def test_pool_arn_partitions(arn: str) -> None:
    assert parse_pool_arn(arn).arn == arn


def arn_with(**parts: str) -> str:
    fields = {
        "partition": "aws",
        "service": "cognito-idp",
        "region": "us-west-2",
        "account": "043455440429",
        "resource": "userpool/us-west-2_fak3p001B",
    }
    fields.update(parts)
    return "arn:{partition}:{service}:{region}:{account}:{resource}".format(**fields)


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (
            "us-west-2_fak3p001B",
            "'us-west-2_fak3p001B' is not an ARN: expected "
            "arn:aws:cognito-idp:<region>:<12-digit account>:userpool/<region>_<id>",
        ),
        (
            arn_with(partition="aws-eu"),
            f"unknown partition 'aws-eu' in ARN '{arn_with(partition='aws-eu')}' "
            "(expected aws, aws-cn or aws-us-gov)",
        ),
        (
            arn_with(service="s3"),
            f"ARN '{arn_with(service='s3')}' is for service 's3', "
            "not a Cognito user pool (cognito-idp)",
        ),
        (
            arn_with(region="uswest2"),
            f"region 'uswest2' in ARN '{arn_with(region='uswest2')}' is not a region name "
            "like us-west-2",
        ),
        (
            arn_with(partition="aws-cn"),
            f"region 'us-west-2' is not in partition 'aws-cn' (ARN '{arn_with(partition='aws-cn')}')",  # noqa: E501 - exact message
        ),
        (
            arn_with(region="cn-north-1", resource="userpool/cn-north-1_a"),
            "region 'cn-north-1' belongs to another partition than 'aws' "
            f"(ARN '{arn_with(region='cn-north-1', resource='userpool/cn-north-1_a')}')",
        ),
        (
            arn_with(account="43455440429"),
            f"account '43455440429' in ARN '{arn_with(account='43455440429')}' must be 12 digits",
        ),
        (
            arn_with(resource="identitypool/us-west-2_x"),
            f"resource 'identitypool/us-west-2_x' in ARN "
            f"'{arn_with(resource='identitypool/us-west-2_x')}' must be userpool/<region>_<id>",
        ),
        (
            arn_with(resource="userpool/fak3p001B"),
            f"user pool id 'fak3p001B' in ARN '{arn_with(resource='userpool/fak3p001B')}' "
            "must look like us-west-2_<letters and digits>",
        ),
        (
            arn_with(resource="userpool/eu-west-1_fak3p001B"),
            "user pool id 'eu-west-1_fak3p001B' is in region 'eu-west-1' but the ARN says "
            "'us-west-2'",
        ),
    ],
)
def test_pool_arn_refused_with_the_wrong_part_named(arn: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_pool_arn(arn)
    assert str(caught.value) == message
