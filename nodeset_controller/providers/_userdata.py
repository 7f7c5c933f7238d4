"""Rendering a NodeClass's user-data template for one Node."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence


class UserDataError(ValueError):
    """The template names a variable kube-node does not provide, or is malformed."""


def render_user_data(
    template: str,
    *,
    node_name: str,
    nodeclass: str,
    provider_id: str,
    labels: Mapping[str, str],
    taints: Sequence[Mapping[str, str]],
) -> str:
    """Substitute ${NODE_NAME}, ${NODE_LABELS}, ${NODE_TAINTS}, ${PROVIDER_ID} and ${NODECLASS}; $$ is a $."""
    values = {
        "NODE_NAME": node_name,
        "NODECLASS": nodeclass,
        "PROVIDER_ID": provider_id,
        "NODE_LABELS": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "NODE_TAINTS": ",".join(f"{t['key']}={t.get('value') or ''}:{t['effect']}" for t in taints),
    }
    try:
        return string.Template(template).substitute(values)
    except KeyError as missing:
        raise UserDataError(
            f"user-data names ${{{missing.args[0]}}}, which kube-node does not provide; "
            f"known: {', '.join('${' + k + '}' for k in sorted(values))}"
        ) from None
    except ValueError as error:
        raise UserDataError(f"user-data template is malformed ({error}); write $$ for a literal $") from None
