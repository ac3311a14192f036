#!/usr/bin/python3
"""features_reference.py: independent numpy/scipy reference for RQ2 (src/analysis/features.c).

Input JSON (written by tests/test_features.c):
  {"n": N, "n_features": F, "labels": [0=male, 1=female, other = not used],
   "langs": [{"name": "en", "use": [0/1]*N, "x": [[per-sample mean activation]*F]*N}, ...],
   "top_k": K}
Output JSON: per language "rate", "rate_male", "rate_female", "mean_male", "mean_female",
"d", "p", "q", "tested" (arrays of F) and "ranking" (features that fired on a used sample by
|d| descending, ties by index, at most max(1000, K)).

Definitions (written from the issue text, not from the C code):
  used samples    use == 1 and label male or female
  tested          the feature is > 0 on at least one used sample
  d               Cohen's d, (mean_female - mean_male) / pooled sample SD (ddof 1)
  p               scipy.stats.mannwhitneyu(female, male, alternative='two-sided') (method auto)
  q               Benjamini-Hochberg over every tested (feature, language) pair jointly
                  (scipy.stats.false_discovery_control when present, else by hand)
Untested features: p = q = 1, d = 0.
"""
import json
import sys

import numpy as np
from scipy import stats

MALE, FEMALE = 0, 1


def bh(p):
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    if hasattr(stats, "false_discovery_control"):
        return stats.false_discovery_control(p, method="bh")
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def cohens_d(a, b):
    na, nb = len(a), len(b)
    sp2 = ((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2)
    return 0.0 if sp2 <= 0 else (np.mean(a) - np.mean(b)) / np.sqrt(sp2)


def lang_stats(x, labels, use, top_k):
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    used = (np.asarray(use) == 1) & ((labels == MALE) | (labels == FEMALE))
    m = used & (labels == MALE)
    f = used & (labels == FEMALE)
    F = x.shape[1]
    out = {k: [] for k in ("rate", "rate_male", "rate_female", "mean_male", "mean_female", "d", "p", "tested")}
    for j in range(F):
        col = x[:, j]
        fired = col > 0
        out["rate"].append(float(fired[used].mean()))
        out["rate_male"].append(float(fired[m].mean()))
        out["rate_female"].append(float(fired[f].mean()))
        out["mean_male"].append(float(col[m].mean()))
        out["mean_female"].append(float(col[f].mean()))
        tested = bool(fired[used].any())
        out["tested"].append(tested)
        if tested:
            out["d"].append(float(cohens_d(col[f], col[m])))
            out["p"].append(float(stats.mannwhitneyu(col[f], col[m], alternative="two-sided").pvalue))
        else:
            out["d"].append(0.0)
            out["p"].append(1.0)
    cap = max(1000, top_k)
    fired_idx = [j for j in range(F) if out["tested"][j]]
    fired_idx.sort(key=lambda j: (-abs(out["d"][j]), j))
    out["ranking"] = fired_idx[:cap]
    return out


def main(argv):
    with open(argv[1]) as fh:
        inp = json.load(fh)
    res = {}
    for L in inp["langs"]:
        res[L["name"]] = lang_stats(L["x"], inp["labels"], L["use"], inp["top_k"])
    # joint BH over tested pairs, languages in input order, features in index order
    ps, where = [], []
    for L in inp["langs"]:
        r = res[L["name"]]
        for j, t in enumerate(r["tested"]):
            if t:
                ps.append(r["p"][j])
                where.append((L["name"], j))
    q = bh(ps)
    for r in res.values():
        r["q"] = [1.0] * len(r["p"])
    for (name, j), v in zip(where, q):
        res[name]["q"][j] = float(v)
    with open(argv[2], "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main(sys.argv)
