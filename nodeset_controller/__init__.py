"""kube-node's controllers and everything they stand on: API types, Kubernetes access, machine providers."""
