"""The repository as shipped: README, deployment files, hooks, benches, conformance."""
