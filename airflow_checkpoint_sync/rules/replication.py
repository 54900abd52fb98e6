"""Pure rules for replicating a checkpoint sync location: what to copy, in which order, and what may be deleted.

No I/O. The operator lists both sides, asks :func:`plan_replication` what to do, copies, and writes the catalog
last; the rules that keep a replica restorable at every moment live here once.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

# CATALOG is re-exported: a replica may name only objects that are already in place.
from airflow_checkpoint_sync.rules.bucket_layout import CATALOG as CATALOG
from airflow_checkpoint_sync.rules.bucket_layout import catalog_uuids
from airflow_checkpoint_sync.rules.status import newest_uuid

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: The writer's lock file: it belongs to the pipeline that owns the bucket, never to a replica.
OWNER = "owner.json"
#: Metadata key on every replicated object: the source object's fingerprint, to recognise an up-to-date copy.
SOURCE_FINGERPRINT = "feldera-source-fingerprint"
#: Metadata key next to it: the MD5 (hex) of the content the replication wrote, so that a copy whose bytes changed
#: while its metadata survived is not taken for the source's content (Azure spells both with '_').
CONTENT_MD5 = "feldera-content-md5"
_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it, its name relative to the prefix.

    ``fingerprint`` identifies the content at the source (an ETag, an MD5, a generation); ``copied_from`` is the
    source fingerprint a replica recorded when it was written (None for objects not written by a replication, ''
    for a copy of a source without one); ``md5`` is the content's MD5 in hex when the store knows it, to verify a
    streamed copy; ``copied_md5`` is the MD5 of the content the replication wrote, recorded next to
    ``copied_from`` (None when not recorded, as by versions before it was).
    """

    name: str
    size: int
    fingerprint: str | None = None
    copied_from: str | None = None
    md5: str | None = None
    copied_md5: str | None = None


def written_md5(replica: StoredObject) -> str | None:
    """The MD5 of the content a replication wrote to ``replica``, as its copy mark records it: the recorded content
    MD5, else the source fingerprint when that is an MD5 (a single-part ETag, a GCS MD5), else None."""
    if replica.copied_md5 and _MD5.match(replica.copied_md5):
        return replica.copied_md5
    if replica.copied_from and _MD5.match(replica.copied_from):
        return replica.copied_from
    return None


def content_changed(replica: StoredObject) -> bool | None:
    """Whether ``replica``'s current content is not what its replication wrote: True or False where the store
    reports the replica's MD5 and its copy mark records the written one, None where that cannot be told."""
    written = written_md5(replica)
    if written is None or replica.md5 is None:
        return None
    return replica.md5 != written


@dataclass(frozen=True)
class ReplicationPlan:
    """What one replication does: ``copy`` (catalog excluded), ``skip``, then the catalog, then ``delete``."""

    copy: tuple[StoredObject, ...]
    skip: tuple[StoredObject, ...]
    catalog: StoredObject | None
    catalog_changed: bool
    delete: tuple[str, ...] = field(default=())


def up_to_date(source: StoredObject, replica: StoredObject | None, *, repair: bool = False) -> bool:
    """Whether ``replica`` already holds ``source``: same size, and the source's content.

    The content is the source's when the replica's listed fingerprint is the source's (a server-side copy's ETag,
    a single-part upload's MD5), or when its copy mark names the source's fingerprint *and* the replica still holds
    what was written: a mark outlives an overwrite that kept the metadata, so it is trusted only where the store's
    MD5 of the replica agrees with the MD5 the mark recorded (or with the source's). With ``repair``, only a mark
    vouches: an object without one is copied again even when its listing shows the source's content.
    """
    if replica is None or replica.size != source.size:
        return False
    if source.fingerprint is None:
        return False  # nothing to compare content with: copy again rather than trust a size
    if not repair and replica.fingerprint == source.fingerprint:
        return True
    if replica.copied_from != source.fingerprint:
        return False
    if replica.md5 is None:
        return True  # the store cannot tell the replica's content (a multipart upload): the mark is all there is
    written = written_md5(replica) or source.md5
    if written is not None and replica.md5 != written:
        return False
    return source.md5 is None or replica.md5 == source.md5


def copy_marks_needed(source: Iterable[StoredObject]) -> Callable[[StoredObject], bool]:
    """Which replicas :func:`up_to_date` needs the copy mark of (a request per object on some stores) to judge
    against ``source``: only those whose size matches and whose listed fingerprint alone does not show the same
    content."""
    by_name = {obj.name: obj for obj in source}

    def needed(replica: StoredObject) -> bool:
        original = by_name.get(replica.name)
        return (
            original is not None
            and original.size == replica.size
            and original.fingerprint is not None
            and original.fingerprint != replica.fingerprint
        )

    return needed


def plan_replication(
    source: Iterable[StoredObject],
    destination: Iterable[StoredObject],
    *,
    delete_removed: bool,
    repair: bool = False,
) -> ReplicationPlan:
    """Which objects to copy and delete so that the destination becomes a copy of the source.

    ``owner.json`` is never copied nor deleted. The catalog is planned apart: the caller writes it only after every
    copy is in place and verified. Deletions (only with ``delete_removed``) come after the catalog. ``repair``: see
    :func:`up_to_date` (the caller then reads every replica's copy mark).
    """
    there = {obj.name: obj for obj in destination}
    copy: list[StoredObject] = []
    skip: list[StoredObject] = []
    catalog = None
    names = set()
    for obj in sorted(source, key=lambda o: o.name):
        if obj.name == OWNER:
            continue
        names.add(obj.name)
        if obj.name == CATALOG:
            catalog = obj
        elif up_to_date(obj, there.get(obj.name), repair=repair):
            skip.append(obj)
        else:
            copy.append(obj)
    catalog_changed = catalog is not None and not up_to_date(catalog, there.get(CATALOG), repair=repair)
    delete: tuple[str, ...] = ()
    if delete_removed:
        delete = tuple(sorted(n for n in there if n not in names and n not in (OWNER, CATALOG)))
    return ReplicationPlan(tuple(copy), tuple(skip), catalog, catalog_changed, delete)


def missing_after_copy(plan: ReplicationPlan, destination: Iterable[StoredObject]) -> list[str]:
    """Objects the catalog may name that the destination does not hold in full: each must be empty to go on."""
    there = {obj.name: obj for obj in destination}
    return [
        f"{obj.name} ({'missing' if obj.name not in there else f'{there[obj.name].size} of {obj.size} bytes'})"
        for obj in (*plan.copy, *plan.skip)
        if obj.name not in there or there[obj.name].size != obj.size
    ]


def newest_in_catalog(body: bytes) -> str | None:
    """The newest checkpoint uuid a catalog names, for the report; None if it cannot be read."""
    return newest_uuid(catalog_uuids(body) or ())


def location_overlap(source: tuple[str, ...], destination: tuple[str, ...]) -> str | None:
    """How two locations overlap, or None when replicating one to the other is safe.

    Each location is ``(service, where, container, prefix)`` (see :class:`EndpointIdentity`): what it is, not which
    connection reaches it nor how that spells it. Only
    locations of one store and container can overlap; then a destination that is, lies inside or holds the source
    would list, overwrite or delete (``delete_removed``) the source's own objects.
    """
    if source[:-1] != destination[:-1]:
        return None
    source_prefix, destination_prefix = source[-1], destination[-1]
    if source_prefix == destination_prefix:
        return "they are the same location"
    if not source_prefix or destination_prefix.startswith(source_prefix + "/"):
        return "the destination lies inside the source"
    if not destination_prefix or source_prefix.startswith(destination_prefix + "/"):
        return "the source lies inside the destination"
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
    """``bucket-or-container[/prefix]`` into its container and its prefix, after :func:`normalize_location`."""
    try:
        text = normalize_location(location)
    except ValueError as exc:
        raise ValueError(f"{parameter}={location!r} is not valid: {exc}") from None
    container, _, prefix = text.partition("/")
    return container, prefix
