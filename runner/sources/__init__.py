"""Event sources: where changes come from (today, Amazon Cognito user pools)."""
