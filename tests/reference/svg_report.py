#!/usr/bin/env python3
"""svg_report.py: fixtures and independent checks for `saecap report`.

Written from the results schemas (docs/results/*.md, the writers' headers)
and from report.md / html.h's page contract, never from src/report/.

usage:
  svg_report.py fixture OUT_DIR [--layers N] [--set KEY=VALUE ...]
      writes OUT_DIR/results/*.json, saes/layer_<L>/training_log.jsonl and
      data/processed/prepare_report.json: a small, plausible study with
      Arabic and English feature cards. --set edits one value after
      generation: KEY is "<stem>:<dotted.path>", VALUE JSON.
  svg_report.py trace REPORT.html OUT_DIR
      every <span class="num"|"txt" data-src="file#path"> of the summary
      must show the value at that path of OUT_DIR/results/<file> (numbers
      with data-dec decimals), and the summary's list items must contain no
      digit outside those spans (items of class "absent", which state that a
      results file is missing or unreadable, are exempt). Prints the number of traced values.
  svg_report.py rq1 VIS_DIR OUT_DIR
      the series of rq1_direction_cosine.svg / rq1_probe_accuracy.svg /
      rq1_cka.svg (their <desc id="saecap-data">) equal the JSON's per-layer
      values, and the divergence layer is marked.
  svg_report.py rq3 VIS_DIR OUT_DIR
      the bars of every rq3_bars_L<layer>_<lang>.svg are the baseline's and
      the conditions' means.gendered, with CIs at baseline + vs_baseline CI.
"""
import html.parser
import json
import math
import os
import random
import sys
import xml.etree.ElementTree as ET

SVG_NS = "{http://www.w3.org/2000/svg}"

AR_CAPTIONS = ["رجل يركب دراجة", "امرأة تقرأ كتابا", "ولد يلعب", "فتاة تبتسم في الحديقة"]
EN_CAPTIONS = ["a man riding a bike", "a woman reading a book", "a boy playing", "a girl smiling"]


def ci(v, w):
    return [round(v - w, 6), round(v + w, 6)]


def crossling(rng, layers):
    lay = []
    for i, L in enumerate(layers):
        cos = round(0.9 - 0.6 * i / max(1, len(layers) - 1) + rng.uniform(-0.02, 0.02), 6)
        probe = {}
        for k, base in (("en", 0.9), ("ar", 0.85), ("en_to_ar", 0.8 - 0.1 * i), ("ar_to_en", 0.78 - 0.1 * i)):
            a = round(base + rng.uniform(-0.02, 0.02), 6)
            probe[k] = {"acc": a, "ci": ci(a, 0.05), "mean_fold_acc": a, "fold_acc": [a] * 3,
                        "single_label_folds": 0}
        probe.update(status="ok", within_mean=0.87, transfer_mean=0.7, transfer_gap=0.17)
        lay.append({"layer": L, "direction": {"en_norm": 1.5, "ar_norm": 1.4, "cosine": cos,
                                              "cosine_status": "ok", "cosine_ci": ci(cos, 0.07),
                                              "cosine_se": 0.03, "bootstrap_valid": 200, "perm_p": 0.004,
                                              "perm_null_mean": 0.11, "perm_null_hi": 0.3, "perm_q": 0.01},
                    "probe": probe, "cka": {"value": round(0.7 - 0.05 * i, 6), "status": "ok"}})
    div = min(len(layers) - 1, 1)
    dv = {"status": "ok", "layer": layers[div], "from_layer": layers[div - 1], "drop": 0.31,
          "drop_ci": [0.12, 0.45], "max_drop_ci": [0.2, 0.5], "layer_ci": [layers[div - 1], layers[div]],
          "layer_support": 0.74, "bootstrap_valid": 200, "definition": "largest drop"}
    if len(layers) < 2:
        dv = {"status": "skipped", "skip_reason": "too_few_layers: one analysed layer has no drop",
              "definition": "largest drop"}
    seg = {"segment": "caption", "status": "ok", "n_rows_in": 36, "n_samples": 24, "n_male": 12,
           "n_female": 12, "n_images": 24, "d_model": 64, "permutation_unit": "image", "layers": lay,
           "divergence": {"direction_cosine": dv, "probe_transfer": dict(dv)}}
    return {"schema": "saecap.cross_lingual_analysis/1", "saecap_version": "0.1.0", "seed": 1,
            "config": {"bootstrap": 200, "permutations": 200, "folds": 3, "probe_c": 1, "ci": 0.95,
                       "min_per_label": 2},
            "primary_segment": "caption", "segments": {"caption": seg}}


def card(rng, feat, rank, lang, n_ex):
    caps = AR_CAPTIONS if lang == "ar" else EN_CAPTIONS
    exs = []
    for e in range(n_ex):
        text = caps[(feat + e) % len(caps)]
        word = text.split(" ")[1 if lang == "en" else 0]
        start = text.encode().index(word.encode())
        exs.append({"sample": e, "label": "female" if e % 2 else "male", "used": True,
                    "max_activation": round(rng.uniform(1, 5), 4), "mean_activation": 0.5,
                    "position": 3, "token_id": 1000 + e, "caption": text, "token": word,
                    "token_span": [start, start + len(word.encode())]})
    return {"feature": feat, "rank": rank, "cohens_d": -1.2, "p": 0.001, "q": 0.004, "firing_rate": 0.3,
            "firing_rate_male": 0.4, "firing_rate_female": 0.2, "mean_male": 0.5, "mean_female": 0.1,
            "d_status": "ok", "examples": exs}


def features(rng, layers, d_sae=64):
    out = []
    for L in layers:
        langs = {}
        for lang in ("en", "ar"):
            feats = rng.sample(range(d_sae), 40)
            rk = [{"feature": f, "cohens_d": round(rng.uniform(-2, 2), 6),
                   "q": round(10 ** rng.uniform(-6, 0), 8), "firing_rate": round(rng.uniform(0, 1), 4)}
                  for f in feats]
            rk.sort(key=lambda e: (-abs(e["cohens_d"]), e["feature"]))
            sig = [e["feature"] for e in rk if e["q"] <= 0.05]
            langs[lang] = {"status": "ok", "n_used": 24, "n_male": 12, "n_female": 12, "n_tested": 40,
                           "n_significant": len(sig), "ranking": rk, "significant": sig,
                           "cards": [card(rng, rk[i]["feature"], i + 1, lang, 2) for i in range(3)]}
        se, sa = set(langs["en"]["significant"]), set(langs["ar"]["significant"])
        cross = {"status": "ok", "n_tests": 80, "fdr": 0.05,
                 "significant": {"en_only": sorted(se - sa), "ar_only": sorted(sa - se), "both": sorted(se & sa)},
                 "counts": {"en_only": len(se - sa), "ar_only": len(sa - se), "both": len(se & sa)},
                 "top_k_overlap": {"k": 10, "overlap": 3, "jaccard": 0.176471, "permutations": 100,
                                   "null_mean": 1.6, "null_sd": 1.1, "null_lo": 0, "null_hi": 4,
                                   "p": 0.2178, "chance": 1.5625}}
        out.append({"layer": L, "sae": f"saes/layer_{L}", "d_sae": d_sae, "languages": langs,
                    "cross_language": cross})
    return {"schema": "saecap.feature_analysis/1", "saecap_version": "0.1.0", "config": {"fdr": 0.05},
            "layers": out}


def sae_metrics(rng, layers):
    saes = []
    for L in layers:
        langs = {lang: {"tokens": 1000, "mse": 0.01, "fvu": round(rng.uniform(0.05, 0.3), 6),
                        "explained_variance": 0.8, "l0": round(rng.uniform(8, 32), 4),
                        "dead_fraction": round(rng.uniform(0, 0.2), 6), "dense_fraction": 0.0,
                        "cosine": 0.95, "l2_ratio": 0.98,
                        "ce_loss": {"samples": 6, "tokens": 90, "clean": 2.0, "sae": 2.2, "zero": 6.0,
                                    "recovered": 0.95}}
                 for lang in ("en", "ar")}
        saes.append({"layer": L, "sae": f"saes/layer_{L}", "languages_trained": ["en", "ar"],
                     "architecture": "topk", "d_in": 64, "d_sae": 64, "k": 8,
                     "training": {"log": f"saes/layer_{L}/training_log.jsonl", "logged_steps": 5},
                     "languages": langs})
    return {"schema": "saecap.sae_metrics/1", "saecap_version": "0.1.0", "eval_split": "test",
            "ce_loss": True, "saes": saes}


def steering(rng, layers, ks=(2, 5), n_random=2):
    conds, tests = [], []
    measures = ("male", "female", "gendered", "neutral", "length", "kl", "delta_loglik", "chrf")

    def cond(name, lang, kind, layer=None, k=None, rep=None, src=None, base=None):
        means = {m: round(rng.uniform(0, 2), 6) for m in measures}
        c = {"name": name, "language": lang, "kind": kind, "captions": f"steering_captions/{name}.jsonl",
             "layer": layer, "k": k, "replicate": rep, "feature_language": src,
             "features": list(range(k or 0)), "config_hash": "fnv1a64:0", "means": means}
        if base is None:
            c["vs_baseline"] = None
        else:
            c["vs_baseline"] = {}
            for m in measures:
                d = round(means[m] - base["means"][m], 6)
                c["vs_baseline"][m] = {"mean_diff": d, "ci_low": round(d - 0.2, 6), "ci_high": round(d + 0.2, 6)}
        conds.append(c)
        return c

    for lang in ("en", "ar"):
        base = cond(f"{lang}_baseline", lang, "baseline")
        other = "ar" if lang == "en" else "en"
        for L in layers[:2]:
            for k in ks:
                t = cond(f"{lang}_L{L}_targeted_k{k}", lang, "targeted", L, k, None, lang, base)
                rs = [cond(f"{lang}_L{L}_random{j}_k{k}", lang, "random", L, k, j, lang, base)
                      for j in range(1, n_random + 1)]
                o = cond(f"{lang}_L{L}_other_k{k}", lang, "other_language", L, k, None, other, base)
                re = [r["vs_baseline"]["gendered"]["mean_diff"] for r in rs]
                tests.append({"language": lang, "layer": L, "k": k, "measure": "gendered",
                              "targeted": t["name"], "targeted_effect": t["vs_baseline"]["gendered"]["mean_diff"],
                              "random_effects": re, "other_language_effect": o["vs_baseline"]["gendered"]["mean_diff"],
                              "random_mean_effect": round(sum(re) / len(re), 6), "p_rank": 0.3333,
                              "signflip_mean_diff": 0.1, "signflip_p": 0.0123, "permutations": 200})
    return {"schema": "saecap.steering_experiments/1", "saecap_version": "0.1.0", "seed": 1,
            "settings": {"mode": "ablate", "split": "test", "n_samples": 6, "max_new_tokens": 16,
                         "precision": "f32", "random_controls": n_random, "bootstrap": 200,
                         "permutations": 200, "ci": 0.95},
            "conditions": conds, "tests": tests}


def morphology(rng, layers, d_sae=64):
    out = []
    for L in layers:
        feats = []
        for f in rng.sample(range(d_sae), 12):
            cls = rng.choice(["grammatical", "semantic", "both"])
            st = lambda: {"cohens_d": round(rng.uniform(-2, 2), 6), "p": 0.001, "q": 0.01,
                          "mean_feminine": 0.3, "mean_masculine": 0.1}
            feats.append({"feature": f, "class": cls, "grammatical": st(), "semantic": st()})
        n = {c: sum(1 for e in feats if e["class"] == c) for c in ("grammatical", "semantic", "both")}
        ar = {"language": "ar", "n_features": d_sae, "fdr": 0.05,
              "grammatical": {"status": "ok", "skip_reason": None, "n_feminine": 40, "n_masculine": 35,
                              "n_tested": 50, "n_significant": n["grammatical"] + n["both"], "top": []},
              "semantic": {"status": "ok", "skip_reason": None, "n_female": 12, "n_male": 12,
                           "n_tested": 50, "n_significant": n["semantic"] + n["both"], "top": []},
              "classification": {"status": "ok", "grammatical": n["grammatical"], "semantic": n["semantic"],
                                 "both": n["both"], "neither": d_sae - len(feats), "untested": 0,
                                 "both_same_direction": 1},
              "features": feats, "features_truncated": False}
        out.append({"layer": L, "sae": f"saes/layer_{L}", "languages": {"ar": ar}})
    return {"schema": "saecap.morphology_analysis/1", "saecap_version": "0.1.0", "segment": "caption",
            "layers": out}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def set_path(obj, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        obj = obj[int(k)] if isinstance(obj, list) else obj[k]
    last = keys[-1]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


def fixture(out, args):
    n_layers, sets = 3, []
    i = 0
    while i < len(args):
        if args[i] == "--layers":
            n_layers = int(args[i + 1]); i += 2
        elif args[i] == "--set":
            sets.append(args[i + 1]); i += 2
        else:
            sys.exit(f"unknown option {args[i]}")
    rng = random.Random(7)
    layers = [1, 3, 5, 7, 9][:n_layers]
    files = {"cross_lingual_analysis": crossling(rng, layers), "feature_analysis": features(rng, layers),
             "sae_metrics": sae_metrics(rng, layers), "steering_experiments": steering(rng, layers),
             "morphology_analysis": morphology(rng, layers)}
    for s in sets:
        key, val = s.split("=", 1)
        stem, path = key.split(":", 1)
        set_path(files[stem], path, json.loads(val))
    for stem, obj in files.items():
        write_json(os.path.join(out, "results", stem + ".json"), obj)
    for L in layers:
        p = os.path.join(out, "saes", f"layer_{L}", "training_log.jsonl")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            for s in range(5):
                f.write(json.dumps({"step": s * 10, "loss": 1 / (s + 1), "mse": 1 / (s + 1), "aux": 0,
                                    "l1": 0, "l0": 8 + s, "dead_fraction": 0.1, "lr": 1e-3}) + "\n")
    write_json(os.path.join(out, "data", "processed", "prepare_report.json"),
               {"n_rows": 36, "n_samples": 36, "n_images": 36, "n_rejected": 0,
                "samples_per_label": {"male": 12, "female": 12, "neutral": 6, "unknown": 6},
                "samples_per_split": {"train": 24, "val": 6, "test": 6}})


class SummaryParser(html.parser.HTMLParser):
    """Collects the traced spans and the free text of the summary's <li>s."""

    def __init__(self):
        super().__init__()
        self.in_summary = 0
        self.li = 0
        self.span = None  # (attrs, text) while inside a traced span
        self.spans = []
        self.free = []
        self.absent = 0  # depth inside <li class="absent"> (a file's state, not a result)
        self.n_absent = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("id") == "summary":
            self.in_summary = 1
        elif self.in_summary and tag == "li":
            self.li += 1
            if "absent" in (a.get("class") or "").split():
                self.absent = self.li
                self.n_absent += 1
        elif self.in_summary and tag == "span" and "data-src" in a:
            self.span = [a, ""]

    def handle_endtag(self, tag):
        if tag == "section" and self.in_summary:
            self.in_summary = 0
        elif tag == "li" and self.li:
            if self.absent == self.li:
                self.absent = 0
            self.li -= 1
        elif tag == "span" and self.span is not None:
            self.spans.append(tuple(self.span))
            self.span = None

    def handle_data(self, data):
        if self.span is not None:
            self.span[1] += data
        elif self.in_summary and self.li and not self.absent:
            self.free.append(data)


def lookup(obj, path):
    for k in path.split("."):
        if isinstance(obj, list):
            try:
                i = int(k)
                if i < 0:
                    return None
                obj = obj[i]
            except (ValueError, IndexError):
                return None
        elif isinstance(obj, dict):
            if k not in obj:
                return None
            obj = obj[k]
        else:
            return None
    return obj


def trace(report, out):
    p = SummaryParser()
    p.feed(open(report, encoding="utf-8").read())
    if not p.spans and not p.n_absent:
        sys.exit("no traced value in the summary")
    cache = {}
    for attrs, text in p.spans:
        fname, path = attrs["data-src"].split("#", 1)
        if fname not in cache:
            fp = os.path.join(out, "results", fname)
            cache[fname] = json.load(open(fp, encoding="utf-8")) if os.path.exists(fp) else None
        v = lookup(cache[fname], path) if cache[fname] is not None else None
        if "num" in attrs.get("class", "").split():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                if text != "n/a":
                    sys.exit(f"{fname}#{path}: shows {text!r} but the JSON has no number there")
                continue
            want = f"{v:.{int(attrs['data-dec'])}f}"
            if text != want:
                sys.exit(f"{fname}#{path}: shows {text!r}, JSON {v!r} -> {want!r}")
        else:
            want = v if isinstance(v, str) else "n/a"
            if text != want:
                sys.exit(f"{fname}#{path}: shows {text!r}, JSON {want!r}")
    for t in p.free:
        if any(ch.isdigit() for ch in t):
            sys.exit(f"summary text has an untraced number: {t!r}")
    print(len(p.spans))


def svg_data(path):
    root = ET.parse(path).getroot()
    for el in root.iter(SVG_NS + "desc"):
        if el.get("id") == "saecap-data":
            return json.loads(el.text)
    sys.exit(f"{path}: no data record")


def series(data, label):
    for s in data["series"]:
        if s["label"] == label:
            return s
    sys.exit(f"no series {label!r} in {[s['label'] for s in data['series']]}")


def rq1(vis, out):
    j = json.load(open(os.path.join(out, "results", "cross_lingual_analysis.json"), encoding="utf-8"))
    seg = j["segments"][j["primary_segment"]]
    layers = seg["layers"]
    xs = [L["layer"] for L in layers]

    def check(svg, label, get, band=None):
        s = series(svg_data(os.path.join(vis, svg)), label)
        want_y = [get(L) for L in layers]
        if s["x"] != xs or s["y"] != want_y:
            sys.exit(f"{svg} {label}: x {s['x']} y {s['y']}, JSON x {xs} y {want_y}")
        if band:
            lo = [band(L)[0] for L in layers]
            hi = [band(L)[1] for L in layers]
            if s["lo"] != lo or s["hi"] != hi:
                sys.exit(f"{svg} {label}: band {s['lo']} {s['hi']}, JSON {lo} {hi}")

    check("rq1_direction_cosine.svg", "EN vs AR direction cosine", lambda L: L["direction"]["cosine"],
          lambda L: L["direction"]["cosine_ci"])
    for key, label in (("en", "English (within)"), ("ar", "Arabic (within)"),
                       ("en_to_ar", "English → Arabic"), ("ar_to_en", "Arabic → English")):
        check("rq1_probe_accuracy.svg", label, lambda L, k=key: L["probe"][k]["acc"],
              lambda L, k=key: L["probe"][k]["ci"])
    check("rq1_cka.svg", "CKA (EN, AR)", lambda L: L["cka"]["value"])
    d = seg["divergence"]["direction_cosine"]
    vl = svg_data(os.path.join(vis, "rq1_direction_cosine.svg"))["vlines"]
    if d.get("status") == "ok":
        if [v["x"] for v in vl] != [d["layer"]]:
            sys.exit(f"divergence marked at {vl}, JSON layer {d['layer']}")
    elif vl:
        sys.exit(f"divergence skipped in JSON but marked at {vl}")
    print("ok")


def rq3(vis, out):
    """Bars of each (language, layer): baseline mean then the conditions of
    that language and layer in file order, heights = means.gendered."""
    j = json.load(open(os.path.join(out, "results", "steering_experiments.json"), encoding="utf-8"))
    conds = j["conditions"]
    pairs = []
    for c in conds:
        if c["kind"] != "baseline" and (c["language"], c["layer"]) not in pairs:
            pairs.append((c["language"], c["layer"]))
    if not pairs:
        sys.exit("no steered condition in the fixture")
    for lang, layer in pairs:
        base = [c for c in conds if c["kind"] == "baseline" and c["language"] == lang][0]
        mine = [c for c in conds if c["language"] == lang and c["layer"] == layer]
        want = [base["means"]["gendered"]] + [c["means"]["gendered"] for c in mine]
        lo = [None] + [base["means"]["gendered"] + c["vs_baseline"]["gendered"]["ci_low"] for c in mine]
        data = svg_data(os.path.join(vis, f"rq3_bars_L{layer}_{lang}.svg"))
        bars = [s for s in data["series"] if s["kind"] == "bars"][0]
        if bars["y"] != want:
            sys.exit(f"rq3_bars_L{layer}_{lang}: bars {bars['y']}, JSON {want}")
        if any(abs(a - b) > 1e-12 for a, b in zip(bars["lo"][1:], lo[1:])) or bars["lo"][0] is not None:
            sys.exit(f"rq3_bars_L{layer}_{lang}: CI low {bars['lo']}, JSON {lo}")
    print("ok")


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "fixture":
        fixture(a[1], a[2:])
    elif len(a) == 3 and a[0] == "trace":
        trace(a[1], a[2])
    elif len(a) == 3 and a[0] == "rq1":
        rq1(a[1], a[2])
    elif len(a) == 3 and a[0] == "rq3":
        rq3(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
