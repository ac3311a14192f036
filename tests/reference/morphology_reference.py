#!/usr/bin/python3
"""Independent numpy/scipy reference for saecap's RQ4 module
(src/analysis/morphology.c), written from docs/results/morphology_analysis.md
and the scipy documentation, not from the C code.

    morphology_reference.py DIR OUT.json

DIR holds what test_morphology.c wrote:
  meta.json   {"n_tokens", "n_features", "n_samples", "fdr",
               "labels": [0|1|2|3 per sample]  (0 male, 1 female; prepare.h),
               "exclude": [0|1 per sample],
               "token_sample": [...], "token_group": ["f"|"m"|"-" per token]}
              token_group marks the observations of the grammatical test as
              the test constructed them: "f"/"m" on the LAST token of a
              feminine/masculine word of the grammatical class, "-" elsewhere.
  acts.f32    float32 [n_tokens, n_features] row-major, native byte order.

Writes {"grammatical": T, "semantic": T, "classes": [str per feature]} with
T = {"n_f", "n_m", "d": [...], "p": [...], "q": [...], "tested": [bool]}.
Definitions: Cohen's d = (mean_f - mean_m) / pooled SD (ddof=1), 0 when the
pooled SD is 0; p = scipy.stats.mannwhitneyu(f, m, alternative='two-sided',
use_continuity=True, method='auto'), 1 when every value is tied; a feature is
tested when any of its values in the test's data is non-zero; q =
Benjamini-Hochberg over the tested features (textbook step-up); class from
q < fdr of each test (grammatical / semantic / both / neither).
"""
import json
import sys

import numpy as np
from scipy import stats


def cohens_d(a, b):
    na, nb = len(a), len(b)
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    sp = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    return 0.0 if sp == 0 else float((np.mean(a) - np.mean(b)) / sp)


def bh(p):
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    q = np.empty(m)
    for rank_i, i in enumerate(order, 1):
        best = 1.0
        for rank_j in range(rank_i, m + 1):
            best = min(best, p[order[rank_j - 1]] * m / rank_j)
        q[i] = min(best, 1.0)
    return q


def two_group(X, fem):
    F = X.shape[1]
    a_rows, b_rows = X[fem], X[~fem]
    d, p, tested = np.zeros(F), np.ones(F), np.zeros(F, dtype=bool)
    for f in range(F):
        a, b = a_rows[:, f].astype(np.float64), b_rows[:, f].astype(np.float64)
        if not (np.any(a != 0) or np.any(b != 0)):
            continue
        tested[f] = True
        d[f] = cohens_d(a, b)
        if np.all(np.concatenate([a, b]) == a[0]):
            p[f] = 1.0
        else:
            p[f] = float(stats.mannwhitneyu(a, b, alternative="two-sided", use_continuity=True,
                                            method="auto").pvalue)
    q = np.ones(F)
    if tested.any():
        q[tested] = bh(p[tested])
    return {"n_f": int(fem.sum()), "n_m": int((~fem).sum()), "d": d.tolist(), "p": p.tolist(),
            "q": q.tolist(), "tested": tested.tolist()}


def main():
    src, out = sys.argv[1], sys.argv[2]
    meta = json.load(open(src + "/meta.json"))
    n, F = meta["n_tokens"], meta["n_features"]
    X = np.fromfile(src + "/acts.f32", dtype=np.float32).reshape(n, F)
    ts = np.array(meta["token_sample"])
    grp = np.array(meta["token_group"])
    excl = np.array(meta["exclude"], dtype=bool)
    labels = np.array(meta["labels"])
    keep = ~excl[ts]
    gsel = keep & (grp != "-")
    gram = two_group(X[gsel], grp[gsel] == "f")
    samples = [s for s in range(meta["n_samples"])
               if not excl[s] and labels[s] in (0, 1) and np.any(ts == s)]
    S = np.stack([X[ts == s].astype(np.float64).mean(axis=0) for s in samples]).astype(np.float32)
    sem = two_group(S, labels[samples] == 1)
    fdr = meta["fdr"]
    classes = []
    for f in range(F):
        g = gram["tested"][f] and gram["q"][f] < fdr
        s = sem["tested"][f] and sem["q"][f] < fdr
        classes.append("both" if g and s else "grammatical" if g else "semantic" if s else "neither")
    json.dump({"grammatical": gram, "semantic": sem, "classes": classes}, open(out, "w"))


if __name__ == "__main__":
    main()
