#!/usr/bin/env python3
"""Draws the bundled demo dataset (data/demo/): small procedural images of a
figure on a background plus captions.csv. Run once by a developer; its output
is committed, so `make demo` needs no Python. Deterministic: same output on
every run (fixed seed, no timestamps in the files)."""
import csv
import os
import random
import sys

from PIL import Image, ImageDraw

EN = ["Describe the person in this image.",
      "Describe this image in one sentence.",
      "What is the person in this image doing?"]
AR = ["صف الشخص في هذه الصورة.",
      "صف هذه الصورة بجملة واحدة.",
      "ماذا يفعل الشخص في هذه الصورة؟"]
LABELS = ["male"] * 12 + ["female"] * 12 + ["neutral"] * 6 + ["unknown"] * 6


def draw(rng, label, size):
    bg = tuple(rng.randrange(60, 230) for _ in range(3))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    for _ in range(3):  # scenery
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(4, size // 4)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    if label in ("male", "female", "neutral"):
        cx = size // 2 + rng.randrange(-8, 9)
        skin = rng.choice([(241, 194, 125), (198, 134, 66), (141, 85, 36), (255, 219, 172)])
        cloth = tuple(rng.randrange(256) for _ in range(3))
        d.ellipse([cx - 8, 12, cx + 8, 28], fill=skin)
        if label == "female":  # longer hair and a dress
            d.rectangle([cx - 10, 10, cx + 10, 34], outline=(60, 30, 10), width=3)
            d.polygon([(cx, 30), (cx - 16, size - 14), (cx + 16, size - 14)], fill=cloth)
        elif label == "male":  # short hair and a shirt with trousers
            d.rectangle([cx - 8, 10, cx + 8, 14], fill=(40, 25, 10))
            d.rectangle([cx - 10, 30, cx + 10, size - 30], fill=cloth)
            d.rectangle([cx - 10, size - 30, cx + 10, size - 12], fill=(40, 40, 90))
        else:
            d.rectangle([cx - 12, 30, cx + 12, size - 12], fill=cloth)
    return im


def main(out):
    rng = random.Random(20261125)
    img_dir = os.path.join(out, "images")
    os.makedirs(img_dir, exist_ok=True)
    rows = []
    for i, label in enumerate(LABELS):
        size = 96
        im = draw(rng, label, size)
        stem = "img_%03d" % i
        if i % 3 == 2:
            name = stem + ".jpg"
            im.save(os.path.join(img_dir, name), quality=80, optimize=True)
        else:
            name = stem + ".png"
            im.quantize(64).save(os.path.join(img_dir, name), optimize=True)
        image_id = stem if i % 4 == 1 else name  # with and without extension
        shown = label.upper() if i % 5 == 0 else label  # labels are case-insensitive
        k = i % len(EN)
        rows.append([image_id, EN[k], AR[k], shown, "procedural"])
    with open(os.path.join(out, "captions.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image_id", "english_prompt", "arabic_prompt", "ground_truth_gender", "source"])
        w.writerows(rows)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/demo")
