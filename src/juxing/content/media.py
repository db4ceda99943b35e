"""Images for posts, avatars and live-room covers: checked by content, never by name."""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from juxing.kit.errors import NotFound, PayloadTooLarge, Unprocessable

FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
           "WEBP": ("webp", "image/webp"), "GIF": ("gif", "image/gif")}  # fmt: skip
MAX_PIXELS = 40_000_000
MAX_SIDE = 10_000
NAME_RE = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp|gif)$")


@dataclass(frozen=True)
class StoredImage:
    name: str
    content_type: str
    width: int
    height: int
    size_bytes: int


def media_dir(data_dir: Path) -> Path:
    return data_dir / "uploads" / "content"


def inspect_image(data: bytes, *, max_bytes: int) -> tuple[str, str, int, int]:
    """(extension, content type, width, height) of an image; 413/422 if it is not one."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The image is larger than {max_bytes} bytes.",
            details=[{"field": "body.file", "message": f"at most {max_bytes} bytes"}],
        )
    if not data:
        raise Unprocessable("The file is empty.", code="invalid_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
                img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Unprocessable(
            "The file is not an image we accept (JPEG, PNG, WebP or GIF).",
            code="invalid_image",
            details=[{"field": "body.file", "message": type(exc).__name__}],
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unprocessable("The image has too many pixels.", code="image_too_large") from exc
    if fmt not in FORMATS:
        raise Unprocessable(
            "The file is not an image we accept (JPEG, PNG, WebP or GIF).",
            code="invalid_image",
            details=[{"field": "body.file", "message": f"format {fmt}"}],
        )
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise Unprocessable("The image has too many pixels.", code="image_too_large")
    ext, content_type = FORMATS[fmt]
    return ext, content_type, width, height


def store_image(*, data: bytes, data_dir: Path, max_bytes: int) -> StoredImage:
    """Check and store an image under its content hash (the same image twice is one file)."""
    ext, content_type, width, height = inspect_image(data, max_bytes=max_bytes)
    name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    folder = media_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return StoredImage(name, content_type, width, height, len(data))


def image_path(*, name: str, data_dir: Path) -> tuple[Path, str]:
    """The stored file for ``name`` and its content type; 404 for anything else."""
    if not NAME_RE.match(name):
        raise NotFound("No such image.")
    path = media_dir(data_dir) / name
    if not path.is_file():
        raise NotFound("No such image.")
    ext = name.rsplit(".", 1)[1]
    return path, next(ct for e, ct in FORMATS.values() if e == ext)
