"""Tests of runner/sources against moto's Cognito server over HTTP."""
