#!/usr/bin/python3
"""pre_reference.py: expected outputs for src/model/preprocess.c from PIL and numpy.

Usage: pre_reference.py resize DIR   DIR/cases.txt lines "in w h out_w out_h filter out":
                                      out = PIL Image.resize((out_w, out_h), filter) of the raw
                                      RGB8 file in (h, w, 3), written raw.
       pre_reference.py pixels DIR   DIR/pixels.txt lines "in w h cfg.json out": HF slow
                                      Gemma3ImageProcessor on the raw RGB8 image (PIL resize,
                                      float64 rescale cast to float32, float32 normalise), CHW
                                      float32 written raw.
       pre_reference.py load DIR     DIR/load.txt lines "image out_w out_h out": transformers'
                                      load_image (Image.open, ImageOps.exif_transpose,
                                      convert("RGB")) then PIL BILINEAR resize, raw RGB8.
       pre_reference.py exif DIR     writes small JPEG/PNG files with EXIF orientations and
                                      DIR/exif.txt lines "file w h expected.rgb" where expected
                                      is ImageOps.exif_transpose(Image.open(file)).convert("RGB")
                                      ("-" when PIL raises; saecap then keeps the stored image).
       pre_reference.py exifrand DIR N
                                      N random TIFF blocks DIR/tiff_<i>.bin and DIR/exifrand.txt
                                      lines "<i> <orientation>": what exif_transpose applies for
                                      "Exif\\0\\0" + block (1 when nothing or when PIL raises).
Debian python3-pil 9.4 and python3-numpy; run with /usr/bin/python3.
"""
import io
import json
import os
import random
import struct
import sys
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps

warnings.simplefilter("ignore")
TRANSPOSING = {2, 3, 4, 5, 6, 7, 8}


def read_rgb(path, w, h):
    return np.fromfile(path, np.uint8).reshape(h, w, 3)


def cmd_resize(d):
    for line in open(os.path.join(d, "cases.txt")):
        src, w, h, ow, oh, flt, out = line.split()
        a = read_rgb(os.path.join(d, src), int(w), int(h))
        r = Image.fromarray(a, "RGB").resize((int(ow), int(oh)), int(flt))
        np.asarray(r, np.uint8).tofile(os.path.join(d, out))


def hf_pixels(a, cfg):
    """Gemma3ImageProcessor.preprocess (slow path) on an RGB uint8 array."""
    if cfg.get("do_resize", True):
        size = cfg.get("size") or {"height": 224, "width": 224}
        resample = cfg.get("resample")
        resample = 2 if resample is None else resample
        a = np.asarray(Image.fromarray(a, "RGB").resize((size["width"], size["height"]), resample))
    x = a
    if cfg.get("do_rescale", True):
        # image_transforms.rescale: float64 product, cast to float32
        x = (x.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    if cfg.get("do_normalize", True):
        # image_transforms.normalize: float32 input, mean/std as float32 arrays
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        mean = np.array(cfg.get("image_mean") or [0.5] * 3, dtype=x.dtype)
        std = np.array(cfg.get("image_std") or [0.5] * 3, dtype=x.dtype)
        x = (x - mean) / std
    return np.ascontiguousarray(x.astype(np.float32).transpose(2, 0, 1))


def cmd_pixels(d):
    for line in open(os.path.join(d, "pixels.txt")):
        src, w, h, cfgp, out = line.split()
        cfg = json.load(open(os.path.join(d, cfgp)))
        hf_pixels(read_rgb(os.path.join(d, src), int(w), int(h)), cfg).tofile(os.path.join(d, out))


def cmd_load(d):
    for line in open(os.path.join(d, "load.txt")):
        path, ow, oh, out = line.split()
        im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        r = im.resize((int(ow), int(oh)), Image.BILINEAR)
        np.asarray(r, np.uint8).tofile(os.path.join(d, out))


def tiff(be, entries, tail=b"", ifd_at=8, magic=None):
    """A TIFF block: header, IFD0 at ifd_at with (tag, type, count, 4-byte field) entries."""
    e = ">" if be else "<"
    head = (magic or (b"MM\x00\x2a" if be else b"II\x2a\x00")) + struct.pack(e + "I", ifd_at)
    body = struct.pack(e + "H", len(entries))
    for tag, typ, count, field in entries:
        body += struct.pack(e + "HHI", tag, typ, count) + field
    body += b"\0\0\0\0"
    return head + b"\0" * (ifd_at - 8) + body + tail


def short(be, v):
    return struct.pack((">" if be else "<") + "HH", v, 0)


def exif_cases():
    """(name, exif bytes incl. "Exif\\0\\0" or None, container)."""
    cases = []
    for o in range(1, 9):
        cases.append((f"o{o}_le", b"Exif\0\0" + tiff(False, [(0x0112, 3, 1, short(False, o))]), "jpg"))
        cases.append((f"o{o}_be", b"Exif\0\0" + tiff(True, [(0x0112, 3, 1, short(True, o))]), "jpg"))
        cases.append((f"o{o}_png", b"Exif\0\0" + tiff(False, [(0x0112, 3, 1, short(False, o))]), "png"))
    cases.append(("o6_png_post", b"Exif\0\0" + tiff(True, [(0x0112, 3, 1, short(True, 6))]), "png_post"))
    cases.append(("long", b"Exif\0\0" + tiff(False, [(0x0112, 4, 1, struct.pack("<I", 8))]), "jpg"))
    cases.append(("rational", b"Exif\0\0" + tiff(True, [(0x0112, 5, 1, struct.pack(">I", 26))],
                                                  tail=struct.pack(">II", 12, 2)), "jpg"))
    cases.append(("byte", b"Exif\0\0" + tiff(False, [(0x0112, 1, 1, b"\x06\0\0\0")]), "jpg"))
    cases.append(("dup", b"Exif\0\0" + tiff(False, [(0x0112, 3, 1, short(False, 3)),
                                                   (0x0112, 3, 1, short(False, 5))]), "jpg"))
    cases.append(("badmagic", b"Exif\0\0XX\x2a\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0", "jpg"))
    cases.append(("noexif", None, "jpg"))
    return cases


def image_bytes(kind, exif):
    w, h = 5, 3
    a = (np.arange(w * h * 3).reshape(h, w, 3) * 17 % 256).astype(np.uint8)
    im = Image.fromarray(a, "RGB")
    buf = io.BytesIO()
    if kind == "jpg":
        im.save(buf, "JPEG", quality=95, **({"exif": exif} if exif else {}))
        return buf.getvalue()
    if kind == "png":
        im.save(buf, "PNG", exif=exif)
        return buf.getvalue()
    im.save(buf, "PNG")  # png_post: an eXIf chunk between the image data and IEND
    data = buf.getvalue()
    body = b"eXIf" + exif[6:]
    chunk = struct.pack(">I", len(exif) - 6) + body + struct.pack(">I", zlib.crc32(body))
    return data[:-12] + chunk + data[-12:]


def cmd_exif(d):
    with open(os.path.join(d, "exif.txt"), "w") as lst:
        for name, exif, kind in exif_cases():
            fname = f"{name}.{'jpg' if kind == 'jpg' else 'png'}"
            path = os.path.join(d, fname)
            with open(path, "wb") as f:
                f.write(image_bytes(kind, exif))
            try:
                im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            except Exception:
                lst.write(f"{fname} 0 0 -\n")
                continue
            np.asarray(im, np.uint8).tofile(path + ".rgb")
            lst.write(f"{fname} {im.width} {im.height} {fname}.rgb\n")


def pil_orientation(block):
    """The orientation exif_transpose acts on for this EXIF block, 1 if none or on error."""
    try:
        exif = Image.Exif()
        exif.load(b"Exif\0\0" + block)
        o = exif.get(0x0112)
        table = {k: k for k in TRANSPOSING}
        return table.get(o, 1)
    except Exception:
        return 1


def random_block(rng):
    be = rng.random() < 0.5
    e = ">" if be else "<"
    entries = []
    for _ in range(rng.randint(0, 6)):
        tag = 0x0112 if rng.random() < 0.6 else rng.choice([0x0100, 0x8769, 0x0112, 7])
        typ = rng.choice([1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 0])
        count = rng.choice([0, 1, 1, 1, 2, 3, 100000])
        if typ in (11,):
            field = struct.pack(e + "f", rng.choice([6.0, 6.5, 3.0, float("nan")]))
        elif typ in (5, 10, 12, 16) or count > 2:
            field = struct.pack(e + "I", rng.randint(0, 80))
        else:
            field = struct.pack(e + "HH", rng.randint(0, 9), rng.randint(0, 9))
        entries.append((tag, typ, count, field))
    tail = bytes(rng.randint(0, 9) if rng.random() < 0.7 else rng.randint(0, 255)
                 for _ in range(rng.randint(0, 40)))
    magic = rng.choice([None, None, None, b"MM\x2a\x00", b"II\x00\x2a", b"MM\x00\x2b",
                        b"II\x2b\x00", b"IM\x2a\x00"])
    block = tiff(be, entries, tail, ifd_at=rng.choice([8, 8, 8, 10, 3, 200]), magic=magic)
    if rng.random() < 0.2:
        block = block[:rng.randint(0, len(block))]
    return block


def cmd_exifrand(d, n):
    rng = random.Random(1234)
    with open(os.path.join(d, "exifrand.txt"), "w") as lst:
        for i in range(n):
            block = random_block(rng)
            with open(os.path.join(d, f"tiff_{i}.bin"), "wb") as f:
                f.write(block)
            lst.write(f"{i} {pil_orientation(block)}\n")


def main(argv):
    if len(argv) >= 2 and argv[0] == "resize":
        cmd_resize(argv[1])
    elif len(argv) >= 2 and argv[0] == "pixels":
        cmd_pixels(argv[1])
    elif len(argv) >= 2 and argv[0] == "load":
        cmd_load(argv[1])
    elif len(argv) >= 2 and argv[0] == "exif":
        cmd_exif(argv[1])
    elif len(argv) >= 3 and argv[0] == "exifrand":
        cmd_exifrand(argv[1], int(argv[2]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
