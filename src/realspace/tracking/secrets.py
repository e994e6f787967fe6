"""Keeping credentials out of what realspace prints, logs and writes.

A tracking URI may carry a password (``postgresql://user:PASS@host/db``,
``http://user:PASS@mlflow:5000``), and so may environment variables
(``MLFLOW_TRACKING_PASSWORD``, ``AWS_SECRET_ACCESS_KEY``, ...). Everything realspace
shows a person or stores passes through ``mask``.
"""

from __future__ import annotations

import logging
import os
import re

__all__ = ["mask", "secret_values", "hide_uri", "reveal_uri", "mask_log_records"]

# userinfo of a URL: scheme://user:password@host -> scheme://user:***@host. The password
# runs to the "@" (it may hold "/", "?" or "#" where a user did not percent-encode them,
# which a URL parser would take for the start of the path, query or fragment)
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@"
)
# secrets in a URL's query: ...?password=PW, &sslpassword=..., &token=..., &api_key=...
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;][A-Za-z0-9_.-]*(?:password|passwd|secret|token|api_key|apikey"
    r"|access_key|private_key)[A-Za-z0-9_.-]*=)(?P<value>[^&;#\s]+)",
    re.IGNORECASE,
)
# environment variables whose values are secrets
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY)", re.I)


def secret_values(environ=None) -> list[str]:
    """Values of the environment variables whose names say they are secrets (at least 4
    characters long, longest first)."""
    env = os.environ if environ is None else environ
    vals = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 4}
    return sorted(vals, key=len, reverse=True)


def mask(text, environ=None):
    """``text`` with URL passwords (userinfo and secret query parameters) and secret
    environment values replaced by ``***`` (anything not a string is returned unchanged)."""
    if not isinstance(text, str):
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['key']}***", text)
    for value in secret_values(environ):
        text = text.replace(value, "***")
    return text


SECRET_URI_ENV = "REALSPACE_TRACKING_URI"  # the unmasked URI, in the driver's environment


def hide_uri(uri: str) -> str:
    """The form of a tracking URI that may be passed around (flow parameters are stored by
    the Prefect server): masked, with the real one kept in this process's environment."""
    masked = mask(uri)
    if masked != uri:
        os.environ[SECRET_URI_ENV] = uri
    return masked


def reveal_uri(uri: str) -> str:
    """The real URI behind ``hide_uri``'s result (in the process that hid it)."""
    real = os.environ.get(SECRET_URI_ENV)
    return real if real and "***" in uri and mask(real) == uri else uri


def mask_log_records() -> None:
    """From now on, every log record this process makes is masked as it is made: its
    message and its traceback text, whichever logger made it (realspace's, Prefect's,
    MLflow's, Ray's) and whichever handlers it then reaches (the console, a file,
    Prefect's API handler, which sends flow and task logs to the server). A filter on
    handlers would miss those that libraries add later; the record factory is one place
    for all. Idempotent; cheap for records below their logger's level, which are never
    made."""
    if getattr(logging.getLogRecordFactory(), "masks_secrets", False):
        return
    make = logging.getLogRecordFactory()

    def masked_record(*args, **kwargs):
        record = make(*args, **kwargs)
        _mask_record(record)
        return record

    masked_record.masks_secrets = True
    logging.setLogRecordFactory(masked_record)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format is logging's to report, as before
        return
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        # a formatter renders the traceback once and keeps it in exc_text: rendered here,
        # masked, it is what every handler shows (the exception's text may hold a URI)
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
