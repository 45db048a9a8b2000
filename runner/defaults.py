"""Every default of a bridge, and the runner's request rate, written once.

The model's dataclasses (`runner.model`), the loader (`runner.loader`), the Cognito clients
(`runner.sources.cognito`) and `run --aws-rps` take their defaults from here. What cannot
import it — the JSON Schemas' `default` keywords and descriptions, the README's tables — is
checked against it by `tests/project/test_defaults.py`: change a value here, then there.

Durations are in seconds, as the model holds them; the schema and the README write them as
bridge files do (`30s`, `500ms`, `5m`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# -- a Bridge (bridge-runner/v1alpha1) ------------------------------------------------------

# spec.source.awsCognitoUserPool
# 5 s: a small pool's changes reach the sink within seconds (TriggerMesh: 1 s after activity,
# up to 32 s when idle); at AWS_RPS a pool of ~2,500 users (50 requests a scan) still keeps up
# alone, one of 300 costs 1 request/s. Larger pools report that they cannot keep up (the
# README's request budget table).
POLL_INTERVAL: Final = 5.0
INITIAL_SYNC: Final = "baseline"
EMIT_DELETIONS: Final = True
# spec.sink
SINK_FORMAT: Final = "binary"
MAX_BATCH_SIZE: Final = 100
SINK_TIMEOUT: Final = 10.0
# Requests in flight per bridge (each user's events still in order): chosen from
# bench/httpclients.py and bench/latency.py, see runner.delivery.deliverer.
MAX_IN_FLIGHT: Final = 16
# spec.delivery
RETRY: Final = None  # no limit: retried until the sink takes the event
BACKOFF_POLICY: Final = "exponential"
BACKOFF_DELAY: Final = 0.5
MAX_BACKOFF: Final = 300.0
# spec
SUSPEND: Final = False
# spec.events
CHANGE_TYPES: Final = ("created", "updated", "deleted")

# Each default above under the dotted path of its field in a bridge file.
BRIDGE_FIELDS: Final[Mapping[str, object]] = MappingProxyType(
    {
        "spec.suspend": SUSPEND,
        "spec.source.awsCognitoUserPool.pollInterval": POLL_INTERVAL,
        "spec.source.awsCognitoUserPool.initialSync": INITIAL_SYNC,
        "spec.source.awsCognitoUserPool.emitDeletions": EMIT_DELETIONS,
        "spec.sink.format": SINK_FORMAT,
        "spec.sink.maxBatchSize": MAX_BATCH_SIZE,
        "spec.sink.timeout": SINK_TIMEOUT,
        "spec.sink.maxInFlight": MAX_IN_FLIGHT,
        "spec.delivery.retry": RETRY,
        "spec.delivery.backoffPolicy": BACKOFF_POLICY,
        "spec.delivery.backoffDelay": BACKOFF_DELAY,
        "spec.delivery.maxBackoff": MAX_BACKOFF,
        "spec.events.changeTypes": CHANGE_TYPES,
    }
)

# -- a TriggerMesh AWSCognitoUserPoolSource --------------------------------------------------

# Fixed, not defaults of the manifest (it has no such fields): a manifest run by
# bridge-runner behaves as TriggerMesh's source did (DESIGN §2.1).
TRIGGERMESH_POLL_INTERVAL: Final = 30.0
TRIGGERMESH_INITIAL_SYNC: Final = "baseline"
TRIGGERMESH_EMIT_DELETIONS: Final = False
TRIGGERMESH_SINK_FORMAT: Final = "binary"

# -- the runner ------------------------------------------------------------------------------

# `run --aws-rps`: Cognito requests per second per (account, region), shared by all pools.
# Cognito's ListUsers quota is about 30; the rest is left to other callers and to retries.
AWS_RPS: Final = 10.0
