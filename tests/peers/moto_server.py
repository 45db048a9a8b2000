"""Placeholder: moto Cognito server fixtures are added by the poller work."""
