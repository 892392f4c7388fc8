"""Reading scanned or photographed pages: image files -> uint8 grey, safely.

The header is read first (Pillow's lazy open), so a file that is not an image, or an image over
`max_pixels`, is refused before anything is decoded. `expand_images` turns the command line's
paths / glob patterns into a list of files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DEFAULT_MAX_PIXELS = 100_000_000


class ImageProblem(ValueError):
    """A file that cannot be used; the message says why (without the file name)."""


# --------------------------------------------------------------------------------------------
# Reading


def read_gray(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes an image file to uint8 grey, refusing non-images and images over max_pixels
    from their header, before decoding."""
    import cv2
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageProblem("file does not exist")
    if not path.is_file():
        raise ImageProblem("not a regular file")
    if path.stat().st_size == 0:
        raise ImageProblem("empty file")
    # Only the header is read here; the size check below replaces Pillow's own bomb check.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt = im.format
    except UnidentifiedImageError:
        raise ImageProblem("not an image (no known image format)") from None
    except OSError as e:
        raise ImageProblem(f"not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if w * h > max_pixels:
        raise ImageProblem(f"image too large: {w}x{h} = {w * h / 1e6:.1f} megapixels, over the "
                           f"limit of {max_pixels / 1e6:.1f} (scan at 300 dpi or resize it)")
    if min(w, h) < 64:
        raise ImageProblem(f"image too small ({w}x{h}) to hold a template page")
    gray = None
    if fmt in ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM"):
        gray = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:  # formats OpenCV does not read, or a file it refused: try Pillow
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # size checked above
        try:
            with Image.open(path) as im:
                gray = np.asarray(im.convert("L"))
        except (OSError, ValueError) as e:
            raise ImageProblem(f"{fmt} image could not be decoded (truncated or corrupt?): "
                               f"{e}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    if gray.ndim != 2 or gray.shape[0] * gray.shape[1] > max_pixels:
        raise ImageProblem(f"decoded image has an unexpected shape {gray.shape}")
    return gray


def expand_images(images) -> list[str]:
    """A list of paths, or one string of comma-separated paths / glob patterns."""
    import glob

    if isinstance(images, (str, os.PathLike)):
        items = [s.strip() for s in os.fspath(images).split(",") if s.strip()]
    else:
        items = [os.fspath(s) for s in images]
    out = []
    for item in items:
        if any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = sorted(glob.glob(item))
            out.extend(matches if matches else [item])
        else:
            out.append(item)
    return out
