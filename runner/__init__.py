"""bridge-runner: Amazon Cognito user pool changes as CloudEvents, declared as YAML in git."""

__version__ = "0.1.0"
