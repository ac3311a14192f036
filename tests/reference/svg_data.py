#!/usr/bin/env python3
"""svg_data.py: reads back what a saecap figure drew, for the plot/report tests.

saecap's SVGs (src/report/plot.h) carry the plotted values as JSON in
<desc id="saecap-data"> right inside <svg>. This script parses the SVG as
XML (so a malformed file fails here), finds that element and prints or
checks its content. Written from plot.h's documented format only.

usage:
  svg_data.py dump FILE.svg              print the data JSON (sorted keys)
  svg_data.py expect FILE.svg EXPECT.json
      EXPECT is {"message": str|null (optional), "series": [{"label", "x",
      "y", "lo", "hi", "labels", "values" ...}]}: each listed series must be
      present (matched by label and kind order) with exactly these values
      (null = NaN/absent). Exit 1 with the first difference.
  svg_data.py png FILE.png W H           the PNG opens (PIL) and is W x H
"""
import json
import math
import sys
import xml.etree.ElementTree as ET

SVG_NS = "{http://www.w3.org/2000/svg}"


def load(path):
    root = ET.parse(path).getroot()
    if root.tag != SVG_NS + "svg":
        sys.exit(f"{path}: root element is {root.tag}, not svg")
    for el in root.iter(SVG_NS + "desc"):
        if el.get("id") == "saecap-data":
            return json.loads(el.text or "")
    sys.exit(f"{path}: no <desc id=\"saecap-data\">")


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        return float(a) == float(b)
    return a == b


def expect(svg, exp_path):
    data = load(svg)
    exp = json.load(open(exp_path))
    if "message" in exp:
        if exp["message"] is None and data["message"] is not None:
            sys.exit(f"{svg}: draws message {data['message']!r}, expected data")
        if exp["message"] is not None and (data["message"] is None or exp["message"] not in data["message"]):
            sys.exit(f"{svg}: message {data['message']!r} lacks {exp['message']!r}")
    for es in exp.get("series", []):
        got = [s for s in data["series"] if s.get("label") == es.get("label")
               and ("kind" not in es or s["kind"] == es["kind"])]
        if not got:
            sys.exit(f"{svg}: no series labelled {es.get('label')!r}; have "
                     f"{[s.get('label') for s in data['series']]}")
        for key, val in es.items():
            if key in ("label", "kind"):
                continue
            if not same(got[0].get(key), val):
                sys.exit(f"{svg}: series {es.get('label')!r} key {key}: got {got[0].get(key)!r}, expected {val!r}")
    for key in ("vlines", "hlines", "title"):
        if key in exp and not same(data[key], exp[key]):
            sys.exit(f"{svg}: {key}: got {data[key]!r}, expected {exp[key]!r}")
    print("ok")


def png(path, w, h):
    from PIL import Image
    im = Image.open(path)
    im.load()
    if im.size != (w, h):
        sys.exit(f"{path}: size {im.size}, expected {(w, h)}")
    # a figure is never blank: more than one colour
    if len(im.getcolors(1 << 20) or [0, 0]) < 2:
        sys.exit(f"{path}: a single colour")
    print("ok")


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "dump":
        print(json.dumps(load(a[1]), sort_keys=True))
    elif len(a) == 3 and a[0] == "expect":
        expect(a[1], a[2])
    elif len(a) == 4 and a[0] == "png":
        png(a[1], int(a[2]), int(a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
