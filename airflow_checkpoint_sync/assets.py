"""The ``feldera`` asset URI scheme: ``feldera://<feldera host>/<pipeline>[/<what>]``.

Registered in the provider info (``asset-uris``), so Airflow sanitizes every ``feldera://`` asset with
:func:`sanitize_uri`: a URI that names no Feldera host or no valid pipeline is refused when the DAG is parsed, and
the scheme and host are lower-cased so one pipeline has one asset. Cheap to import: the pipeline name rule is pure
(:mod:`airflow_checkpoint_sync.rules.params`).

Any scheme without an ``x-`` prefix makes Airflow load every installed provider's asset handlers when the first
asset is built, and the Amazon provider's ``s3`` handler imports boto3; the example DAGs therefore keep
``x-feldera://`` (which Airflow does not sanitize) so that parsing them loads no cloud SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_checkpoint_sync.rules.params import PIPELINE_NAME

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

SCHEME = "feldera"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's asset URI handler for ``feldera://``: the URI, normalized, or ``ValueError`` saying what is wrong."""
    if not uri.netloc:
        raise ValueError(
            f"{uri.geturl()!r}: a feldera:// asset URI names the Feldera host: feldera://<host>/<pipeline>"
        )
    if uri.query or uri.fragment:
        raise ValueError(f"{uri.geturl()!r}: a feldera:// asset URI has no query or fragment")
    segments = [s for s in uri.path.split("/") if s]
    if not segments or not PIPELINE_NAME.match(segments[0]):
        raise ValueError(
            f"{uri.geturl()!r}: the first path segment of a feldera:// asset URI is the pipeline name (letters, "
            "digits, '-' and '_', starting and ending with a letter or digit)"
        )
    return uri._replace(scheme=SCHEME, netloc=uri.netloc.lower(), path="/" + "/".join(segments))


def create_asset(*, host: str, pipeline: str, what: str = "checkpoints", extra: dict[str, Any] | None = None) -> Asset:
    """The asset of ``pipeline``'s ``what`` (``checkpoints``, ``failovers``...) on the Feldera at ``host``."""
    from airflow.sdk import Asset

    return Asset(uri=f"{SCHEME}://{host}/{pipeline}/{what}", extra=extra)
