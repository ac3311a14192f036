#!/usr/bin/python3
"""img_reference.py: test images for src/io/image.c and PIL's pixels for them.

Usage: img_reference.py OUTDIR          (writes the cases, see below)
       img_reference.py --seeds OUTDIR  (writes tiny fuzz seeds instead)

For every case it writes OUTDIR/<case>.<png|jpg>, OUTDIR/<case>.rgb (the raw
bytes of PIL's Image.open(path).convert("RGB"), row-major R G B) and one line
"<file> <width> <height>" in OUTDIR/cases.txt. The C test decodes each file
and compares byte for byte.

PNGs come from a small writer below, not from PIL, because PIL cannot write
16-bit RGB, interlaced or 2-bit grey PNGs; it also cycles the five row
filters so every unfilter path is exercised. JPEGs are written by PIL
(libjpeg-turbo). Content is deterministic: gradients plus seeded noise.
"""
import os
import struct
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

# Adam7 passes: (x0, y0, dx, dy), PNG spec section 8.2.
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_row(ftype, raw, prior, bpp):
    """Filters one row of bytes; every filter reads unfiltered bytes."""
    x = raw.astype(np.int64)
    up = prior.astype(np.int64)
    left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]]) if len(x) else x
    upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]]) if len(x) else x
    pred = [np.zeros_like(x), left, up, (left + up) // 2, paeth(left, up, upleft)][ftype]
    return bytes([ftype]) + ((x - pred) & 0xFF).astype(np.uint8).tobytes()


def pack_row(samples, depth):
    """Samples (flat) of one row to PNG bytes: packed MSB first, or big-endian 16."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    pad = (-len(samples)) % per
    s = np.concatenate([samples, np.zeros(pad, samples.dtype)]).astype(np.uint8)
    s = s.reshape(-1, per)
    out = np.zeros(len(s), np.uint8)
    for i in range(per):
        out |= s[:, i] << (8 - depth * (i + 1))
    return out.tobytes()


def image_rows(img, depth):
    """Filtered scanlines of one (sub)image (H, W, C), filters cycling 0..4."""
    h, w, c = img.shape
    bpp = max(1, c * depth // 8)
    prior = np.zeros(len(pack_row(img[0].reshape(-1), depth)) if h and w else 0, np.uint8)
    out = b""
    for y in range(h):
        raw = np.frombuffer(pack_row(img[y].reshape(-1), depth), np.uint8)
        out += filter_row(y % 5, raw, prior, bpp)
        prior = raw
    return out


def write_png(path, samples, color, depth, palette=None, trns=None,
              interlace=False, extra=()):
    """samples: (H, W) or (H, W, C) integers already in the file's range."""
    img = samples if samples.ndim == 3 else samples[:, :, None]
    h, w, c = img.shape
    assert c == CHANNELS[color]
    if interlace:
        data = b"".join(image_rows(img[y0::dy, x0::dx], depth)
                        for (x0, y0, dx, dy) in ADAM7
                        if img[y0::dy, x0::dx].size)
    else:
        data = image_rows(img, depth)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, int(interlace)))
    for kind, body in extra:
        png += chunk(kind, body)
    if palette is not None:
        png += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        png += chunk(b"tRNS", trns)
    comp = zlib.compress(data, 9)
    for i in range(0, len(comp), 97):  # several IDATs: the reader must join them
        png += chunk(b"IDAT", comp[i:i + 97])
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def content(h, w, c, maxval, seed):
    """Gradient plus noise, clipped to [0, maxval]."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 7 + yy * 3 + 40 * k) for k in range(c)], -1).astype(np.float64)
    base = base / max(1.0, base.max()) * maxval
    noise = rng.randint(-maxval // 8 - 1, maxval // 8 + 2, size=(h, w, c))
    return np.clip(base + noise, 0, maxval).astype(np.int64)


def palette(n, seed):
    return np.random.RandomState(seed).randint(0, 256, size=(n, 3))


def png_cases(out):
    """(name, writer) for every PNG kind image.c must match PIL on."""
    W, H = 37, 29
    gama = [(b"gAMA", struct.pack(">I", 70000)), (b"cHRM", struct.pack(">8I", *([30000] * 8)))]
    idx = lambda n, s: content(H, W, 1, n - 1, s)[:, :, 0]
    cases = {
        "png_rgb8": lambda p: write_png(p, content(H, W, 3, 255, 1), 2, 8, extra=gama),
        "png_rgba8": lambda p: write_png(p, content(H, W, 4, 255, 2), 6, 8),
        "png_gray8": lambda p: write_png(p, content(H, W, 1, 255, 3), 0, 8, extra=gama),
        "png_gray_alpha8": lambda p: write_png(p, content(H, W, 2, 255, 4), 4, 8),
        "png_gray1": lambda p: write_png(p, content(H, W, 1, 1, 5), 0, 1),
        "png_gray2": lambda p: write_png(p, content(H, W, 1, 3, 6), 0, 2),
        "png_gray4": lambda p: write_png(p, content(H, W, 1, 15, 7), 0, 4),
        "png_gray8_trns": lambda p: write_png(p, content(H, W, 1, 255, 8), 0, 8,
                                              trns=struct.pack(">H", 100)),
        "png_rgb8_trns": lambda p: write_png(p, content(H, W, 3, 255, 9), 2, 8,
                                             trns=struct.pack(">3H", 1, 2, 3)),
        "png_pal1": lambda p: write_png(p, idx(2, 10), 3, 1, palette=palette(2, 10)),
        "png_pal2": lambda p: write_png(p, idx(4, 11), 3, 2, palette=palette(4, 11)),
        "png_pal4": lambda p: write_png(p, idx(16, 12), 3, 4, palette=palette(16, 12)),
        "png_pal8": lambda p: write_png(p, idx(256, 13), 3, 8, palette=palette(256, 13)),
        "png_pal1_trns": lambda p: write_png(p, idx(2, 14), 3, 1, palette=palette(2, 14),
                                             trns=b"\x00"),
        "png_pal4_trns": lambda p: write_png(p, idx(16, 15), 3, 4, palette=palette(16, 15),
                                             trns=bytes(range(0, 160, 20))),
        "png_pal8_trns": lambda p: write_png(p, idx(200, 16), 3, 8, palette=palette(200, 16),
                                             trns=bytes(range(0, 250, 2))),
        # Indices past the end of a short PLTE: PIL shows (i, i, i).
        "png_pal4_short_plte": lambda p: write_png(p, idx(16, 33), 3, 4, palette=palette(5, 33)),
        "png_pal8_short_plte": lambda p: write_png(p, idx(256, 34), 3, 8, palette=palette(9, 34),
                                                   trns=b"\x00\x10"),
        "png_rgb16": lambda p: write_png(p, content(H, W, 3, 65535, 17), 2, 16),
        "png_rgba16": lambda p: write_png(p, content(H, W, 4, 65535, 18), 6, 16),
        # Values on both sides of 255: PIL opens 16-bit grey as mode I and clips.
        "png_gray16": lambda p: write_png(p, content(H, W, 1, 700, 19), 0, 16),
        "png_gray16_full": lambda p: write_png(p, content(H, W, 1, 65535, 20), 0, 16),
        "png_gray16_trns": lambda p: write_png(p, content(H, W, 1, 600, 21), 0, 16,
                                               trns=struct.pack(">H", 300)),
        "png_gray_alpha16": lambda p: write_png(p, content(H, W, 2, 65535, 22), 4, 16),
        "png_rgb8_interlaced": lambda p: write_png(p, content(H, W, 3, 255, 23), 2, 8,
                                                   interlace=True),
        "png_rgba8_interlaced": lambda p: write_png(p, content(H, W, 4, 255, 24), 6, 8,
                                                    interlace=True),
        "png_gray1_interlaced": lambda p: write_png(p, content(H, W, 1, 1, 25), 0, 1,
                                                    interlace=True),
        "png_pal4_interlaced": lambda p: write_png(p, idx(16, 26), 3, 4, palette=palette(16, 26),
                                                   interlace=True),
        "png_gray16_interlaced": lambda p: write_png(p, content(H, W, 1, 700, 27), 0, 16,
                                                     interlace=True),
        "png_rgb16_interlaced": lambda p: write_png(p, content(H, W, 3, 65535, 28), 2, 16,
                                                    interlace=True),
        # Tiny interlaced images leave some Adam7 passes empty.
        "png_rgb8_interlaced_1x1": lambda p: write_png(p, content(1, 1, 3, 255, 29), 2, 8,
                                                       interlace=True),
        "png_gray8_interlaced_3x2": lambda p: write_png(p, content(2, 3, 1, 255, 30), 0, 8,
                                                        interlace=True),
        "png_rgb8_wide": lambda p: write_png(p, content(2, 300, 3, 255, 31), 2, 8),
        "png_pil_rgb": lambda p: Image.fromarray(content(H, W, 3, 255, 32).astype(np.uint8),
                                                 "RGB").save(p, optimize=True),
    }
    return [(name + ".png", fn) for name, fn in cases.items()]


def jpeg_cases():
    """(name, writer) for the JPEG kinds; PIL's encoder is libjpeg-turbo."""
    W, H = 67, 45

    def rgb(seed, h=H, w=W):
        return Image.fromarray(content(h, w, 3, 255, seed).astype(np.uint8), "RGB")

    cases = {
        "jpg_rgb_420": lambda p: rgb(40).save(p, quality=90, subsampling=2),
        "jpg_rgb_422": lambda p: rgb(41).save(p, quality=85, subsampling=1),
        "jpg_rgb_444": lambda p: rgb(42).save(p, quality=95, subsampling=0),
        "jpg_progressive": lambda p: rgb(43).save(p, quality=80, progressive=True),
        "jpg_progressive_444": lambda p: rgb(44).save(p, quality=90, progressive=True,
                                                      subsampling=0),
        "jpg_optimized": lambda p: rgb(45).save(p, quality=75, optimize=True),
        "jpg_odd_420": lambda p: rgb(46, 23, 37).save(p, quality=90, subsampling=2),
        "jpg_gray": lambda p: Image.fromarray(content(H, W, 1, 255, 47)[:, :, 0].astype(np.uint8),
                                              "L").save(p, quality=90),
        "jpg_gray_progressive": lambda p: Image.fromarray(
            content(H, W, 1, 255, 48)[:, :, 0].astype(np.uint8), "L").save(
                p, quality=90, progressive=True),
        # PIL writes CMYK with an Adobe marker and inverted samples, the
        # Photoshop convention it also assumes when reading.
        "jpg_cmyk": lambda p: Image.fromarray(content(H, W, 4, 255, 49).astype(np.uint8),
                                              "CMYK").save(p, quality=90),
    }
    return [(name + ".jpg", fn) for name, fn in cases.items()]


def write_cases(out):
    # PIL warns that P + tRNS "should be converted to RGBA"; RGB is what we want.
    warnings.filterwarnings("ignore", "Palette images with Transparency")
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, fn in png_cases(out) + jpeg_cases():
        path = os.path.join(out, name)
        fn(path)
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        with open(path + ".rgb", "wb") as f:
            f.write(rgb.tobytes())
        lines.append(f"{name} {rgb.shape[1]} {rgb.shape[0]}\n")
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.writelines(lines)


def write_seeds(out):
    """A few tiny images (a few hundred bytes) for fuzz/corpus/image."""
    os.makedirs(out, exist_ok=True)
    write_png(os.path.join(out, "rgb8.png"), content(5, 6, 3, 255, 1), 2, 8)
    write_png(os.path.join(out, "pal4_trns.png"), content(5, 6, 1, 15, 2)[:, :, 0], 3, 4,
              palette=palette(16, 2), trns=b"\x00\x80")
    write_png(os.path.join(out, "gray16_interlaced.png"), content(9, 9, 1, 700, 3), 0, 16,
              interlace=True)
    write_png(os.path.join(out, "rgba8_interlaced.png"), content(4, 5, 4, 255, 4), 6, 8,
              interlace=True)
    small = Image.fromarray(content(8, 8, 3, 255, 5).astype(np.uint8), "RGB")
    small.save(os.path.join(out, "rgb_420.jpg"), quality=50, subsampling=2)
    small.save(os.path.join(out, "rgb_progressive.jpg"), quality=50, progressive=True,
               optimize=True)
    Image.fromarray(content(8, 8, 1, 255, 6)[:, :, 0].astype(np.uint8), "L").save(
        os.path.join(out, "gray.jpg"), quality=50, optimize=True)
    Image.fromarray(content(8, 8, 4, 255, 7).astype(np.uint8), "CMYK").save(
        os.path.join(out, "cmyk.jpg"), quality=50, optimize=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        write_seeds(sys.argv[2])
    elif len(sys.argv) == 2:
        write_cases(sys.argv[1])
    else:
        sys.exit("usage: img_reference.py [--seeds] OUTDIR")
