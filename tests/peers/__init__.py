"""Real local peers for tests: moto's Cognito server, a loopback CloudEvents sink, fault proxies."""
