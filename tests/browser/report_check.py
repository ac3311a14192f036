#!/usr/bin/env python3
"""report_check.py: opens a saecap report in headless Chromium and checks it.

Drives chromedriver over its W3C WebDriver HTTP API with the standard
library only (urllib), so no selenium is needed. Checks (issue 10):
  - the page loads from disk in under --max-load-ms (navigationStart to
    loadEventEnd, measured by the browser; best of LOAD_TRIES loads);
  - no console errors (browser log, level SEVERE);
  - no network requests: every Network.requestWillBeSent in the
    performance log is a file: or data: URL;
  - every <img> decoded with a non-zero size and every <svg> has a
    non-zero box;
  - every element with lang="ar" has dir="rtl" and a computed direction
    of rtl, and there is at least one;
  - pixel test: in a screenshot, the ink of a one-line Arabic caption lies
    against the right edge of its box and leaves its left part empty;
  - the file is smaller than --max-bytes.
Saves a screenshot of the first screen (--screenshot) and one of the
Arabic caption tested (same name, suffix -arabic.png).

usage: report_check.py REPORT.html --screenshot OUT.png [--max-load-ms 2000]
       [--max-bytes 5242880] [--chromium /usr/bin/chromium]
       [--chromedriver /usr/bin/chromedriver]
Exit 0 and a JSON line of measurements when every check passes; exit 1
with the first failure otherwise; exit 77 when Chromium is missing.
"""
import argparse
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Page loads measured before the load time counts as too slow.
LOAD_TRIES = 3
# Ink: a pixel this much darker than the caption's background (0-255, summed over RGB).
INK_DELTA = 60
# The rendered line's right edge may sit this far inside the box's content edge (px).
RIGHT_TOLERANCE = 6
# A right-aligned short line leaves at least this much of the box's left part empty (px).
LEFT_GAP_MIN = 40


def fail(msg):
    print(f"report_check: {msg}", file=sys.stderr)
    sys.exit(1)


class Driver:
    def __init__(self, chromedriver, chromium, profile):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.sid = None
        for _ in range(100):
            try:
                if self.call("GET", "/status").get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            self.close()
            fail("chromedriver did not start")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,1400", "--force-device-scale-factor=1",
                "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"}}}}
        self.sid = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read()).get("value")
        except urllib.error.HTTPError as e:
            fail(f"webdriver {method} {path}: {e.code} {e.read()[:300]!r}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.sid}{path}", body)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def log(self, kind):
        return self.s("POST", "/se/log", {"type": kind}) or []

    def screenshot(self):
        return base64.b64decode(self.s("GET", "/screenshot"))

    def close(self):
        try:
            if self.sid:
                self.call("DELETE", f"/session/{self.sid}")
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def check_network(perf):
    n = 0
    for e in perf:
        m = json.loads(e["message"])["message"]
        if m.get("method") != "Network.requestWillBeSent":
            continue
        url, doc = m["params"]["request"]["url"], m["params"].get("documentURL", "")
        # chrome:// pages (the initial new-tab page) are the browser's own;
        # anything on a network scheme, or anything the report asks for that
        # is not a file: or data: URL, is a request the report made.
        if url.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp") or \
                (doc.startswith("file:") and not url.startswith(("file:", "data:"))):
            fail(f"network request to {url} (from {doc})")
        n += doc.startswith("file:")
    return n


ELEMENTS_JS = """
const bad = [];
for (const im of document.querySelectorAll('img')) {
  const r = im.getBoundingClientRect();
  if (!im.complete || im.naturalWidth === 0 || r.width === 0 || r.height === 0)
    bad.push('img ' + (im.alt || im.src.slice(0, 40)));
}
for (const sv of document.querySelectorAll('svg')) {
  const r = sv.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) bad.push('svg');
}
const ar = [];
for (const el of document.querySelectorAll('[lang="ar"]'))
  ar.push([el.getAttribute('dir'), getComputedStyle(el).direction]);
const t = performance.timing;
return {bad: bad, n_img: document.querySelectorAll('img').length,
        n_svg: document.querySelectorAll('svg').length, ar: ar,
        load_ms: t.loadEventEnd - t.navigationStart, dom_ms: t.domContentLoadedEventEnd - t.navigationStart, resp_ms: t.responseEnd - t.navigationStart};
"""

# The shortest one-line Arabic caption: its content box and the text's box.
ARABIC_JS = """
let best = null;
for (const el of document.querySelectorAll('p[lang="ar"]')) {
  if (!el.textContent.trim()) continue;
  const range = document.createRange();
  range.selectNodeContents(el);
  const rects = range.getClientRects();
  const tops = new Set(Array.from(rects).map(r => Math.round(r.top)));
  if (tops.size !== 1) continue;
  const tr = range.getBoundingClientRect();
  if (!best || tr.width < best.tw) best = {el: el, tw: tr.width};
}
if (!best) return null;
best.el.scrollIntoView({block: 'center'});
const el = best.el, cs = getComputedStyle(el), r = el.getBoundingClientRect();
const range = document.createRange();
range.selectNodeContents(el);
const tr = range.getBoundingClientRect();
const pl = parseFloat(cs.paddingLeft), pr = parseFloat(cs.paddingRight);
return {left: r.left + pl, right: r.right - pr, top: tr.top, bottom: tr.bottom,
        text_left: tr.left, text_right: tr.right, dpr: window.devicePixelRatio,
        bg: cs.backgroundColor, text: el.textContent};
"""


def ink_columns(png, box):
    from PIL import Image
    im = Image.open(io.BytesIO(png)).convert("RGB")
    s = box["dpr"]
    x0, x1 = int(box["left"] * s), int(box["right"] * s)
    y0, y1 = int(box["top"] * s) + 1, int(box["bottom"] * s) - 1
    if x1 <= x0 or y1 <= y0 or y1 > im.height or x1 > im.width:
        fail(f"Arabic caption box {box} outside the screenshot {im.size}")
    bg = im.getpixel((x0 + 1, y0))  # the caption's padding: background
    cols = []
    for x in range(x0, x1):
        for y in range(y0, y1):
            p = im.getpixel((x, y))
            if sum(bg) - sum(p) > INK_DELTA:
                cols.append(x)
                break
    return cols, x0, x1, im


def check_arabic(drv, shot_path):
    box = drv.js(ARABIC_JS)
    if not box:
        fail("no one-line Arabic caption (p[lang=ar]) to test")
    time.sleep(0.2)
    png = drv.screenshot()
    cols, x0, x1, im = ink_columns(png, box)
    if not cols:
        fail(f"no ink found in the Arabic caption {box['text']!r}")
    s = box["dpr"]
    right_gap, left_gap = (x1 - 1 - max(cols)) / s, (min(cols) - x0) / s
    im.crop((x0, int(box["top"] * s), x1, int(box["bottom"] * s))).save(shot_path)
    if right_gap > RIGHT_TOLERANCE:
        fail(f"Arabic caption {box['text']!r}: ink ends {right_gap:.0f}px before the right edge")
    if (box["right"] - box["left"]) - (box["text_right"] - box["text_left"]) > 2 * LEFT_GAP_MIN \
            and left_gap < LEFT_GAP_MIN:
        fail(f"Arabic caption {box['text']!r}: ink starts {left_gap:.0f}px from the left edge")
    return {"arabic_right_gap_px": right_gap, "arabic_left_gap_px": left_gap}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--max-load-ms", type=float, default=2000)
    ap.add_argument("--max-bytes", type=int, default=5 << 20)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    a = ap.parse_args()
    if not (os.access(a.chromium, os.X_OK) and os.access(a.chromedriver, os.X_OK)):
        print(f"report_check: {a.chromium} or {a.chromedriver} missing: skipped", file=sys.stderr)
        sys.exit(77)
    size = os.path.getsize(a.report)
    if size >= a.max_bytes:
        fail(f"{a.report} is {size} bytes (limit {a.max_bytes})")
    profile = tempfile.mkdtemp(prefix="saecap-chromium-")
    drv = None
    try:
        drv = Driver(a.chromedriver, a.chromium, profile)
        # Best of LOAD_TRIES loads: one load slowed by a busy shared machine
        # should not fail the check; a page that is slow every time does.
        loads = []
        for _ in range(LOAD_TRIES):
            t0 = time.monotonic()
            drv.s("POST", "/url", {"url": "file://" + os.path.abspath(a.report)})
            nav_ms = (time.monotonic() - t0) * 1000
            el = drv.js(ELEMENTS_JS)
            loads.append(el["load_ms"])
            if el["load_ms"] <= a.max_load_ms:
                break
        with open(a.screenshot, "wb") as f:
            f.write(drv.screenshot())
        out = {"bytes": size, "load_ms": el["load_ms"], "dom_ms": el["dom_ms"], "resp_ms": el["resp_ms"], "navigate_ms": round(nav_ms),
               "loads_ms": loads, "img": el["n_img"], "svg": el["n_svg"], "arabic_elements": len(el["ar"])}
        if el["load_ms"] > a.max_load_ms:
            fail(f"page load took {el['load_ms']} ms (limit {a.max_load_ms:.0f}): {out}")
        if el["bad"]:
            fail(f"elements with no size or not decoded: {el['bad'][:5]}")
        if el["n_img"] + el["n_svg"] == 0:
            fail("the page has no image")
        if not el["ar"]:
            fail("no element with lang=\"ar\"")
        for d, cd in el["ar"]:
            if d != "rtl" or cd != "rtl":
                fail(f"an Arabic element has dir={d!r}, computed direction {cd!r}")
        out.update(check_arabic(drv, a.screenshot[:-4] + "-arabic.png"))
        errs = [e for e in drv.log("browser") if e.get("level") == "SEVERE"]
        if errs:
            fail(f"console errors: {[e.get('message') for e in errs][:3]}")
        out["requests"] = check_network(drv.log("performance"))
        print(json.dumps(out))
    finally:
        if drv:
            drv.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
