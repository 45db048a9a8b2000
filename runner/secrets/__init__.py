"""Secrets: resolving references (`resolver`), which environment variables a bridge may read
(`envpolicy`), and keeping resolved values out of every log line (`redaction`)."""
