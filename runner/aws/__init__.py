"""What every AWS client of the runner shares, below both its users (the Cognito source and
the AWS sinks): credentials from a bridge's `auth` (`credentials`) and the scrubbing of
botocore's wire logs (`botocore_logs`), and the error codes every service shares
(`error_codes`)."""
