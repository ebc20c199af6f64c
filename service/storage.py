"""The only place that knows a local folder from `s3://bucket/prefix`.

Everything else names objects by keys relative to a root (`baseline/x.json`,
`_state/lease/00000000000000000001.json`) and asks this module for a Delta table URI and the
storage options delta-rs needs for it.

S3 settings come from the standard AWS environment: credentials, `AWS_REGION` /
`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (an S3-compatible store such as moto or SeaweedFS) and
`AWS_ALLOW_HTTP` (plain HTTP to a loopback store). boto3 reads the ingestion objects; delta-rs does
its own HTTP for the tables, so both are given the same endpoint here and nowhere else.
"""

from __future__ import annotations

import builtins
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the storage root, with forward slashes
    size: int
    modified: datetime


class StorageError(RuntimeError):
    """Storage could not be reached or answered with an error after retries."""


class UnreadableObject(StorageError):
    """This one object cannot be read, and retrying will not help (a symbolic link, a file
    without read permission, an object access is denied to or that vanished): the file is
    rejected, the run goes on."""


class Storage(Protocol):
    uri: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def list_with_time(self, prefix: str) -> tuple[builtins.list[ObjectInfo], datetime]: ...
    def read(self, key: str) -> bytes: ...
    def read_if_exists(self, key: str) -> bytes | None: ...
    def read_range(self, key: str, start: int, end: int) -> bytes: ...
    def delete_many(self, keys: builtins.list[str]) -> None: ...
    # `data`: bytes, or a view of a buffer (a Parquet file written into memory, not copied)
    def write(self, key: str, data: bytes | memoryview) -> None: ...
    def put_if_absent(self, key: str, data: bytes) -> bool: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def child_uri(self, key: str) -> str: ...
    def delta_storage_options(self) -> dict[str, str]: ...


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class LocalStorage:
    """A folder on this machine. Writes go through a temporary file and a rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key.lstrip("/")).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"key {key!r} escapes the storage root {self.uri}")
        return path

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every entry that is not a folder: regular files, and symbolic links and other
        special files too (never followed; `read` refuses them, so they are reported)."""
        base = self._path(prefix) if prefix else self.root
        # a prefix may end inside a name (`_state/lease/wake-`): list its folder, then filter
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for path in sorted(start.rglob("*")):
            if path.name.startswith(".tmp-"):
                continue
            try:
                info = path.lstat()
            except OSError:  # vanished while listing
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix.lstrip("/")):
                yield ObjectInfo(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def list_with_time(self, prefix: str) -> tuple[builtins.list[ObjectInfo], datetime]:
        """The objects under `prefix` and the store's own time (here: this machine's clock,
        the clock that stamps the files' modification times)."""
        objects = list(self.list(prefix))
        return objects, datetime.now(UTC)

    def read(self, key: str) -> bytes:
        walked = self.root
        for part in Path(key.lstrip("/")).parts:
            walked = walked / part
            if walked.is_symlink():
                raise UnreadableObject(f"{key} is a symbolic link (links are not followed)")
        path = self._path(key)
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise UnreadableObject(f"{key} is not a regular file")
            return path.read_bytes()
        except OSError as exc:
            raise UnreadableObject(f"{key} cannot be read: {exc.strerror or exc}") from exc

    def check_root(self, role: str, must_exist_with_content: bool = False) -> None:
        """Raise StorageError (one line) unless the root is a readable folder."""
        if not self.root.exists():
            raise StorageError(f"{role} root {self.uri} does not exist")
        if not self.root.is_dir():
            raise StorageError(f"{role} root {self.uri} is not a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StorageError(f"{role} root {self.uri} cannot be read (permission denied)")
        if must_exist_with_content and not any(self.root.iterdir()):
            raise StorageError(f"{role} root {self.uri} is empty")

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object (fewer at its end)."""
        with self._path(key).open("rb") as f:
            f.seek(start)
            return f.read(max(0, end - start))

    def read_if_exists(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete_many(self, keys: builtins.list[str]) -> None:
        for key in keys:
            self.delete(key)

    def write(self, key: str, data: bytes | memoryview) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)  # atomic create-if-absent with the full content in place
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def child_uri(self, key: str) -> str:
        return str(self._path(key))

    def delta_storage_options(self) -> dict[str, str]:
        return {}


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


class S3Storage:
    """A bucket and prefix in S3 (or an S3-compatible store named by AWS_ENDPOINT_URL)."""

    def __init__(self, uri: str) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URI: {uri!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.uri = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Standard retry mode retries throttling, 5xx and connection errors with backoff.
            config = Config(retries={"max_attempts": 8, "mode": "standard"})
            self._client = boto3.client("s3", endpoint_url=_s3_endpoint(), config=config)
        return self._client

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = _join(self.prefix, prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][strip:], obj["Size"], obj["LastModified"])
        except Exception as exc:  # botocore raises many types; one clear error for callers
            raise StorageError(f"listing s3://{self.bucket}/{full} failed: {exc}") from exc

    def list_with_time(self, prefix: str) -> tuple[builtins.list[ObjectInfo], datetime]:
        """The objects under `prefix` and the store's own time: the `Date` header of the (last)
        listing response, so expiry is judged on the store's clock, not the caller's."""
        from email.utils import parsedate_to_datetime

        full = _join(self.prefix, prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: builtins.list[ObjectInfo] = []
        now: datetime | None = None
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        try:
            while True:
                page = self.client.list_objects_v2(**kwargs)
                date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
                if date:
                    now = parsedate_to_datetime(date)
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(obj["Key"][strip:], obj["Size"], obj["LastModified"]))
                if not page.get("IsTruncated"):
                    break
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        except Exception as exc:
            raise StorageError(f"listing s3://{self.bucket}/{full} failed: {exc}") from exc
        return out, now or datetime.now(UTC)

    def read_if_exists(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none (one GET, no HEAD first)."""
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))[
                "Body"
            ].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchKey", "404", "NotFound"}:
                return None
            where = f"s3://{self.bucket}/{self._key(key)}"
            raise StorageError(f"reading {where} failed: {exc}") from exc
        except Exception as exc:
            where = f"s3://{self.bucket}/{self._key(key)}"
            raise StorageError(f"reading {where} failed: {exc}") from exc
        return body

    def delete_many(self, keys: builtins.list[str]) -> None:
        """Delete in batches of 1,000 keys: one request each (S3 DeleteObjects)."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
            )

    def read(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))[
                "Body"
            ].read()
        except Exception as exc:
            where = f"s3://{self.bucket}/{self._key(key)}"
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _PERMANENT_READ_ERRORS:  # this object, for good: reject it, go on
                raise UnreadableObject(f"reading {where} failed: {exc}") from exc
            raise StorageError(f"reading {where} failed: {exc}") from exc
        return body

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object (fewer at its end): one ranged GET."""
        if end <= start:
            return b""
        try:
            body: bytes = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}"
            )["Body"].read()
        except Exception as exc:
            where = f"s3://{self.bucket}/{self._key(key)}"
            raise StorageError(f"reading {where} bytes {start}-{end - 1} failed: {exc}") from exc
        return body

    def check_root(self, role: str, must_exist_with_content: bool = False) -> None:
        """With `must_exist_with_content`: raise StorageError (one line) unless something is
        stored under the prefix. Otherwise nothing to check here: a missing bucket already
        fails the listing itself (and a run spends no extra request)."""
        if not must_exist_with_content:
            return
        try:
            page = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.prefix + "/" if self.prefix else "", MaxKeys=1
            )
        except Exception as exc:
            raise StorageError(f"{role} root {self.uri} cannot be listed: {exc}") from exc
        if must_exist_with_content and not page.get("KeyCount", len(page.get("Contents", []))):
            raise StorageError(f"{role} root {self.uri} does not exist (nothing under it)")

    def write(self, key: str, data: bytes | memoryview) -> None:
        body = data.tobytes() if isinstance(data, memoryview) else data  # botocore: bytes
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in {"PreconditionFailed", "ConditionalRequestConflict"} or status in {
                409,
                412,
            }:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def child_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def delta_storage_options(self) -> dict[str, str]:
        # delta-rs commits a version with a conditional PUT (If-None-Match: *): no DynamoDB lock.
        # `aws_conditional_put` is object_store's documented key (the bare `conditional_put`
        # alias is accepted too); moto server and SeaweedFS both answer 412 to a second create.
        options = {"aws_conditional_put": "etag"}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["AWS_REGION"] = region
        endpoint = _s3_endpoint()
        if endpoint:
            options["AWS_ENDPOINT_URL"] = endpoint
            options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        if os.environ.get("AWS_ALLOW_HTTP", "").lower() in {"1", "true", "yes"} or (
            endpoint or ""
        ).startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if os.environ.get(name):
                options[name] = os.environ[name]
        return options


# S3 error codes that say this object cannot be read however often it is tried.
_PERMANENT_READ_ERRORS = frozenset(
    {"AccessDenied", "NoSuchKey", "InvalidObjectState", "403", "404", "KMS.DisabledException"}
)


def check_root(storage: Storage, role: str, must_exist_with_content: bool = False) -> None:
    """StorageError unless `storage`'s root can be read (see each class's check_root)."""
    if isinstance(storage, LocalStorage | S3Storage):
        storage.check_root(role, must_exist_with_content)


def check_roots_apart(ingestion: Storage, processed: Storage) -> None:
    """ValueError if one root holds the other: the pipeline would read its own output."""

    def parts(storage: Storage) -> tuple[str, tuple[str, ...]] | None:
        if isinstance(storage, LocalStorage):
            return "file", storage.root.parts
        if isinstance(storage, S3Storage):
            return f"s3://{storage.bucket}", tuple(p for p in storage.prefix.split("/") if p)
        return None

    a, b = parts(ingestion), parts(processed)
    if a is None or b is None or a[0] != b[0]:
        return
    shorter = min(len(a[1]), len(b[1]))
    if a[1][:shorter] != b[1][:shorter]:
        return
    if a[1] == b[1]:
        problem = "is the same as the ingestion root"
    elif len(b[1]) > len(a[1]):
        problem = "is inside the ingestion root"
    else:
        problem = "holds the ingestion root"
    raise ValueError(
        f"processed root {processed.uri} {problem} {ingestion.uri}: use two separate places"
    )


def open_storage(uri: str) -> Storage:
    """A Storage for a local path or an s3:// URI."""
    if uri.startswith("s3://"):
        return S3Storage(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"unsupported storage URI {uri!r}: use a local path or s3://bucket/prefix")
    return LocalStorage(uri.removeprefix("file://"))
