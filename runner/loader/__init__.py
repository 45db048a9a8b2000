"""Loading: a bridge file becomes a `LoadResult` (a `Bridge`, or located `Problem`s).

Discovery of the files in a bridges directory, safe YAML with positions, `${VAR}`
substitution, schema error wording, semantic checks, the two formats (bridge-runner's own and
TriggerMesh's `CognitoUserPoolSource`), digests, ARNs. Nothing here does network I/O or
touches the state database; it never raises for bad input.
"""
