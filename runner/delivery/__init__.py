"""Delivery: from the outbox to the sink, at least once.

    deliverer   one per bridge: reads pending events, sends, records what the sink did
    window      the requests in flight of a drain, each user's events in order
    marks       the group commit of delivered marks
    lanes       the runner's HTTP client, over several connection pools
    policy      which failures are retried, refused or the sink's own fault; the backoff
    encodings   the CloudEvents encodings (binary, structured, batch, JSON lines)
    sinks       the sender interface and `open_sender`, which picks one of:
    http_sink   POSTs to an http(s) sink
    file_sink   appends JSON lines to a `file:` sink in the state directory
    aws_sink    sends to an SQS queue, SNS topic, EventBridge bus or Kinesis stream, with
                aws_entries (entries and their requests) and aws_errors (retry or refusal)
    dead_letters  what happens to events given up: dead-lettered, or parked
    texts       secret-free texts of a failed send, and Knative's dead-letter extensions
    leftovers   the file that keeps undelivered events a removed bridge leaves behind

The sinks never import each other; what they share is in policy, encodings and texts.
"""
