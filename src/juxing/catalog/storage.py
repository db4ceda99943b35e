"""Where uploaded images live: a local folder or any S3-compatible store, behind one
interface (``ImageStorage``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx
from PIL import Image, UnidentifiedImageError

from juxing.kit.errors import NotFound, PayloadTooLarge, Unprocessable

ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
MAX_PIXELS = 40_000_000


class ImageStorage(Protocol):
    """Stores bytes under a key."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class LocalImageStorage:
    """Files under a folder (the embedded default: ``<data_dir>/uploads``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise NotFound("No such image.")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFound("No such image.")
        return path.read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3ImageStorage:
    """Any S3-compatible store (AWS S3, MinIO, R2, ...), path-style, signed with SigV4."""

    def __init__(
        self, *, endpoint: str, bucket: str, access_key: str, secret_key: str, region: str
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def _request(self, method: str, key: str, data: bytes = b"", content_type: str = "") -> bytes:
        now = dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = now.strftime("%Y%m%d")
        host = httpx.URL(self.endpoint).netloc.decode()
        path = f"/{self.bucket}/{quote(key, safe='/')}"
        payload_hash = hashlib.sha256(data).hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        if content_type:
            headers["content-type"] = content_type
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                path,
                "",
                "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                signed,
                payload_hash,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key_bytes = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        response = httpx.request(
            method, self.endpoint + path, headers=headers, content=data, timeout=30
        )
        if response.status_code == 404:
            raise NotFound("No such image.")
        response.raise_for_status()
        return response.content

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._request("PUT", key, data, content_type)

    def get(self, key: str) -> bytes:
        return self._request("GET", key)

    def delete(self, key: str) -> None:
        self._request("DELETE", key)


def inspect_image(data: bytes, *, max_bytes: int) -> tuple[str, int, int]:
    """Check an upload is a real JPEG/PNG/WebP within the size limit: (type, width, height)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"Images may be at most {max_bytes} bytes.",
            code="image_too_large",
            details={"field": "file", "max_bytes": max_bytes},
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise Unprocessable("The image has too many pixels.", code="image_too_large")
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise Unprocessable(
            "The file is not a readable image.", code="image_invalid", details={"field": "file"}
        ) from exc
    if fmt not in ALLOWED_FORMATS:
        raise Unprocessable(
            "Images must be JPEG, PNG or WebP.",
            code="image_type_not_allowed",
            details={"field": "file", "allowed": sorted(ALLOWED_FORMATS.values())},
        )
    return ALLOWED_FORMATS[fmt], width, height
