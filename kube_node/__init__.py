"""kube-node: Kubernetes manages its own nodes. This package wires the parts into the ``kube-node`` command."""

__version__ = "0.1.0"
