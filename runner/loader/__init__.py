"""Loading: a bridge file becomes a `LoadResult` (a `Bridge`, or located `Problem`s).

    config              the entry: load_bridge / load_bytes, composing the steps below
    discovery           which files of a bridges directory are bridges, and their ids
    reading             safe read of one file (regular files only, at most 1 MiB)
    yamlsafe            safe YAML with the position of every value
    document            a parsed document being checked: typed reads, located Problems
    variables           ${VAR} substitution under the runner's EnvPolicy
    schema_messages     JSON Schema errors, worded for people
    semantics           the checks a schema cannot express (ARNs, durations, URLs, secrets)
    bridge_format       bridge-runner's own format -> Bridge
    triggermesh_format  TriggerMesh's AWSCognitoUserPoolSource -> Bridge
    digest              the effective spec and the digests over it
    arn                 user pool and IAM role ARNs

Nothing here does network I/O or touches the state database; it never raises for bad input.
"""
