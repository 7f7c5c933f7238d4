"""Logging for the kube-node process: text for people, JSON lines for log pipelines.

Python warnings go through the same handler, in the same format, once per cause: urllib3, for one, warns
on every request when a kubeconfig skips TLS verification (its own filter says "always"), which would
otherwise be two raw lines on stderr per API call, breaking JSON logs.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
import warnings
from typing import TextIO

#: The attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, thread, the record's fields (``extra=``, e.g.
    object and reason on every Event) and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        entry |= {key: value for key, value in _fields(record).items() if key not in entry}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: The logger warnings are logged on (as logging.captureWarnings names it).
WARNINGS_LOGGER = "py.warnings"
#: Distinct causes remembered; past that, new ones are still logged, every time (a bound on memory).
_MAX_WARNING_CAUSES = 1000
_warned: set[tuple[type[Warning], str, str]] = set()
_warned_lock = threading.Lock()


def log_warning(  # noqa: PLR0917 - warnings.showwarning's signature
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A ``warnings.showwarning`` that logs the warning at WARNING, once per category, message and module
    (the file that warned), with the fields ``category`` and ``source``."""
    text = str(message)
    cause = (category, text, filename)
    with _warned_lock:
        if cause in _warned:
            return
        if len(_warned) < _MAX_WARNING_CAUSES:
            _warned.add(cause)
    logging.getLogger(WARNINGS_LOGGER).warning(
        "%s: %s (logged once)",
        category.__name__,
        text,
        extra={"category": category.__name__, "source": f"{filename}:{lineno}"},
    )


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send logs to stderr at ``level`` in ``fmt`` ("text" or "json"), Python warnings among them."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3 logs every retry of a dropped watch connection at WARNING; kube-node logs what it does about it.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    warnings.showwarning = log_warning
