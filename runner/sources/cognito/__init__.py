"""The Cognito source: clients and credentials, the ListUsers scan and its segments, the
request budget shared per account and region, botocore's hooks and logs, and the mapping of
AWS errors to `SourceUnavailable` (retry) or `SourceRejected` (refused)."""
