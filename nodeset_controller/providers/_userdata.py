"""Rendering a NodeClass's user-data template for one Node."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

#: What joining takes (the API server, its CA, a bootstrap token): given by the caller as ``join``.
JOIN_VARIABLES = ("API_SERVER", "BOOTSTRAP_TOKEN", "CA_CERT_BASE64", "CA_CERT_HASH")


class UserDataError(ValueError):
    """The template names a variable kube-node does not provide, or is malformed."""


def user_data_variables(template: str) -> set[str]:
    """The variables ``template`` names (``${X}`` and ``$X``); malformed placeholders are left to rendering."""
    return set(string.Template(template).get_identifiers())


def render_user_data(
    template: str,
    *,
    node_name: str,
    nodeclass: str,
    provider_id: str,
    labels: Mapping[str, str],
    taints: Sequence[Mapping[str, str]],
    join: Mapping[str, str] | None = None,
) -> str:
    """Substitute ${NODE_NAME}, ${NODE_LABELS}, ${NODE_TAINTS}, ${PROVIDER_ID}, ${NODECLASS} and the join
    variables given in ``join`` (${API_SERVER}, ${BOOTSTRAP_TOKEN}, ${CA_CERT_BASE64}, ${CA_CERT_HASH}); $$ is
    a $. The result may hold a bootstrap token: it goes to the cloud, never to a log."""
    values = {
        "NODE_NAME": node_name,
        "NODECLASS": nodeclass,
        "PROVIDER_ID": provider_id,
        "NODE_LABELS": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "NODE_TAINTS": ",".join(f"{t['key']}={t.get('value') or ''}:{t['effect']}" for t in taints),
        **(join or {}),
    }
    try:
        return string.Template(template).substitute(values)
    except KeyError as missing:
        known = sorted({*values, *JOIN_VARIABLES})
        raise UserDataError(
            f"user-data names ${{{missing.args[0]}}}, which kube-node does not provide; "
            f"known: {', '.join('${' + k + '}' for k in known)}"
        ) from None
    except ValueError as error:
        raise UserDataError(f"user-data template is malformed ({error}); write $$ for a literal $") from None
