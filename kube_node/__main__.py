"""``python -m kube_node`` is the ``kube-node`` command."""

from kube_node.cli import main

raise SystemExit(main())
