"""The plain script `bench/backfill.py` holds the runner to: boto3's ListUsers paginator and
httpx, posting each page's users as it reads them, one request at a time.

    .venv/bin/python bench/_plain.py ENDPOINT POOL_ARN SINK_URL binary|batch

binary: one POST per user, CloudEvents binary headers, the user as JSON data; batch: one
`application/cloudevents-batch+json` POST per page (60 users). No state, no retries beyond
boto3's standard mode, no ordering or crash guarantees: the floor, not a competitor.
"""

import hashlib
import json
import sys

import boto3
import httpx
from botocore.config import Config

endpoint, arn, sink, mode = sys.argv[1:5]
pool_id, region = arn.rsplit("/", 1)[1], arn.split(":")[3]
cognito = boto3.client(
    "cognito-idp", region_name=region, endpoint_url=endpoint,
    config=Config(retries={"mode": "standard"}),
)  # fmt: skip
TYPE = "com.amazon.cognito-idp.sync_trigger"
with httpx.Client() as http:
    for page in cognito.get_paginator("list_users").paginate(UserPoolId=pool_id):
        events = []
        for user in page["Users"]:
            data = json.dumps(user, default=str)
            attrs = {"id": hashlib.sha256(data.encode()).hexdigest()[:32], "type": TYPE}
            attrs |= {"source": arn, "subject": pool_id, "specversion": "1.0"}
            if mode == "binary":
                headers = {f"ce-{k}": v for k, v in attrs.items()}
                headers["content-type"] = "application/json"
                http.post(sink, content=data, headers=headers).raise_for_status()
            events.append(attrs | {"datacontenttype": "application/json", "data": user})
        if mode == "batch" and events:
            body = json.dumps(events, default=str)
            headers = {"content-type": "application/cloudevents-batch+json"}
            http.post(sink, content=body, headers=headers).raise_for_status()
