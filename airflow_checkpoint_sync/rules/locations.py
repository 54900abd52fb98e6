"""Where checkpoints live: a location's one spelling (``bucket[/prefix]``), the identity of the store an endpoint
reaches, and whether two locations overlap.

Pure: answers are values (an identity, an overlap's kind, True/False/None) that each caller words in its own
message. Resolving a host name is I/O and is the caller's (``object_stores.endpoint_addresses``); :func:`same_store`
only compares what was resolved.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_checkpoint_sync.exceptions import FelderaParameterError


class Overlap(enum.StrEnum):
    """How one location overlaps another; each caller words it for its own parameters."""

    #: They are one location.
    SAME = "same"
    #: The second lies inside the first.
    INSIDE = "inside"
    #: The second holds the first.
    HOLDS = "holds"


def location_overlap(first: tuple[str, ...], second: tuple[str, ...]) -> Overlap | None:
    """How ``second`` overlaps ``first``, or None when writing to one cannot touch the other.

    Each location is ``(service, where, container, prefix)`` (see :class:`EndpointIdentity`): what it is, not which
    connection reaches it nor how that spells it. Only locations of one store and container can overlap; then a
    location that is, lies inside or holds the other would list, overwrite or delete the other's own objects.
    """
    if first[:-1] != second[:-1]:
        return None
    first_prefix, second_prefix = first[-1], second[-1]
    if first_prefix == second_prefix:
        return Overlap.SAME
    if not first_prefix or second_prefix.startswith(first_prefix + "/"):
        return Overlap.INSIDE
    if not second_prefix or first_prefix.startswith(second_prefix + "/"):
        return Overlap.HOLDS
    return None


#: The host every spelling of this machine's loopback interface stands for.
LOOPBACK = "loopback"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Services whose identity the host name alone decides: their buckets or accounts are one name space.
NAMED_SERVICES = ("aws-s3", "azure-blob", "gcs")
_AWS_S3_LABEL = re.compile(r"^s3(?:-[a-z0-9-]+)?$")
_AZURE_BLOB = re.compile(
    r"^([a-z0-9]+?)(?:-secondary)?\.(?:z\d+\.)?(?:privatelink\.)?blob\.(core\.[a-z0-9.]+|storage\.azure\.net)$"
)
_GCS_HOSTS = ("storage.googleapis.com", "storage.cloud.google.com", "www.googleapis.com")


@dataclass(frozen=True)
class EndpointIdentity:
    """What store an endpoint URL reaches, however it is spelled: two URLs of one identity reach one store.

    ``service`` is ``aws-s3``, ``azure-blob`` or ``gcs`` for the clouds' own services (their host names decide), or
    the URL's scheme for any other server; ``where`` is the AWS partition, the Azure cloud and account, '' for GCS,
    or ``host[:port][/path]`` with the host lower case, ``loopback`` for every loopback spelling and the scheme's
    default port left out.
    """

    service: str
    where: str

    def __str__(self) -> str:
        return f"{self.service}:{self.where}" if self.where else self.service

    @property
    def named(self) -> bool:
        """Whether the host name alone decides the identity (a cloud's own service), so no lookup can add to it."""
        return self.service in NAMED_SERVICES


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (lower case, IPv6 without brackets) names this machine's loopback interface."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_identity(url: str, bucket: str | None = None) -> EndpointIdentity:
    """The identity of the store at endpoint ``url``; ``bucket``, when given, is taken off a virtual-host style
    host (``<bucket>.<host>``), which reaches the same store as the path-style ``<host>``.

    Not the spelling: scheme and host case, a default port (80 for http, 443 for https), ``localhost`` against
    ``127.0.0.1`` (any of 127.0.0.0/8, ``::1``), and for AWS every S3 host name of a partition (global, regional,
    ``s3-<region>``, dualstack, FIPS, VPC interface endpoints): S3 bucket names are one name space per partition.
    Azure Blob is an account, GCS one global name space.
    """
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None  # not a number: the spelling then stays part of the identity
    path = parts.path.strip("/")
    if bucket and host.startswith(f"{bucket.lower()}."):
        host = host[len(bucket) + 1 :]
    labels = host.split(".")
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")) and any(_AWS_S3_LABEL.match(x) for x in labels):
        region = next((x for x in labels if re.match(r"^[a-z]{2}(?:-[a-z]+)+-\d+$", x)), "")
        partition = "aws-cn" if host.endswith(".cn") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        return EndpointIdentity("aws-s3", partition)
    azure = _AZURE_BLOB.match(host)
    if azure:
        return EndpointIdentity("azure-blob", f"{azure.group(2)}/{azure.group(1)}")
    if host in _GCS_HOSTS or host.endswith(".storage.googleapis.com"):
        return EndpointIdentity("gcs", "")
    if is_loopback_host(host):
        host = LOOPBACK
    elif ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return EndpointIdentity(scheme, f"{host}/{path}" if path else host)


def same_store(
    a: EndpointIdentity,
    b: EndpointIdentity,
    a_addresses: frozenset[str] | None = None,
    b_addresses: frozenset[str] | None = None,
) -> bool | None:
    """Whether two endpoints reach one store: True, False, or None when it cannot be decided.

    One identity is one store. Two clouds' own services (``aws-s3``, ``azure-blob``, ``gcs``) of other identities
    are not. Otherwise the addresses each endpoint's host resolves to (``address:port``, from a lookup the caller
    made; None when it failed) decide: shared addresses mean one server under two names.
    """
    if a == b:
        return True
    if a.named and b.named:
        return False
    if a_addresses is None or b_addresses is None:
        return None
    return bool(a_addresses & b_addresses)


#: A bucket or container name: what S3, GCS and Azure Blob all accept, before their own length and case rules.
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LOCATION_FORM = "'bucket-name[/prefix]' without a URL scheme"


def normalize_location(location: object) -> str:
    """``bucket[/prefix]`` in its one spelling (no slash at the end), or ValueError saying what is wrong with it.

    A location is compared, stored in a sync config and listed under this spelling, so ``b/p/`` and ``b/p`` are
    one location. What could name another place than it seems is refused, not repaired: a scheme, empty, ``.`` or
    ``..`` segments, a leading slash, white space, backslashes and control characters.
    """
    if not isinstance(location, str) or not location.strip():
        raise ValueError(f"required: {LOCATION_FORM}")
    text = location.strip()
    if "://" in text or text.lower().startswith(("s3:", "gs:", "az:")):
        raise ValueError(f"{LOCATION_FORM}: drop the scheme")
    if text.endswith("/"):
        text = text[:-1]
    container, _, prefix = text.partition("/")
    if not _CONTAINER.match(container):
        raise ValueError(f"{LOCATION_FORM}: {container!r} is not a bucket name (letters, digits, '.', '-', '_')")
    segments = prefix.split("/") if prefix else []
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"{LOCATION_FORM}: no empty, '.' or '..' segments (no '//')")
    if any(c.isspace() or c == "\\" or not c.isprintable() for c in text):
        raise ValueError(f"{LOCATION_FORM}: no white space, backslashes or control characters")
    return text


def split_location(location: str, parameter: str) -> tuple[str, str]:
    """``bucket-or-container[/prefix]`` into its container and its prefix, after :func:`normalize_location`; a
    location it refuses is a :class:`~airflow_checkpoint_sync.exceptions.FelderaParameterError` naming
    ``parameter``."""
    try:
        text = normalize_location(location)
    except ValueError as exc:
        raise FelderaParameterError(parameter, location, str(exc)) from None
    container, _, prefix = text.partition("/")
    return container, prefix
