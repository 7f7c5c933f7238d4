"""The cluster-autoscaler's externalgrpc CloudProvider, serving NodeSets as node groups."""
