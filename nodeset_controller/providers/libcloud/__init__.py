"""The libcloud adapter: machines from any Apache Libcloud compute provider named in a NodeClass.

libcloud is untyped and its drivers differ in small, sharp ways (which keyword takes user data, where tags
go and whether they come back, whether create_node takes a location at all). Those differences live in one
dialect per driver, each in a module of its own; everything above them speaks only :class:`MachineProvider`'s
types. The modules, each importing only those below it (import-linter checks it):

- ``_adapter``: :class:`LibcloudProvider`, the provider itself (drivers, the shared listing, which machines
  are ours, create_node's arguments), and the table of dialects;
- one module per driver dialect, each saying in its docstring how that driver's machines carry kube-node's
  tags (TAG_CLUSTER, TAG_NODE, TAG_NODECLASS) and how they are read back: ``_ec2``, ``_gce``, ``_openstack``,
  ``_digitalocean``, ``_linode``, ``_equinixmetal``; every other driver gets the base dialect, with no tags;
- ``_dialect``: the dialect base (also the fallback for drivers without a dialect), the ``key:value`` tag
  list DigitalOcean and Linode share, and the small helpers at the libcloud boundary;
- ``_errors``: error classification (:func:`classify_error`).

A machine whose node name tag may have been cut comes back with ``node_name_truncated``: its ``node_name`` is
only the start of its Node's name, and the Node must be found by the full machine name. A cut cluster tag
reads the same for every cluster whose name starts the same, so such a machine comes back with
``cluster=None`` (below). A machine just created or found by ``create`` carries the exact values it was sent.

Where tags cannot be read back (equinixmetal, and drivers without a dialect here), our machines are
recognised by name alone: a node counts as ours if its name has the shape :func:`machine_name` produces
(``<dns-label>-<8 hex digits>``). Such machines come back with ``cluster=None``, which tells callers that
ownership was inferred, not proven: never garbage-collect one that no Node claims.
"""

from ._adapter import LISTING_MAX_AGE, DriverFactory, LibcloudProvider
from ._errors import classify_error

__all__ = ["LISTING_MAX_AGE", "DriverFactory", "LibcloudProvider", "classify_error"]
