"""Placeholder: loopback CloudEvents sink fixtures are added by the delivery work."""
