#!/usr/bin/python3
"""Independent numpy/scipy reference for saecap's analysis statistics
(src/analysis/stats.c, probe.c, crossling.c).

Written from the definitions in the scipy/numpy documentation and the
papers, not from saecap's C code. Every sub-command reads one JSON input
file and writes one JSON output file:

    stats_reference.py cohen   IN OUT   {"cases": [{"a": [...], "b": [...]}]}
    stats_reference.py mwu     IN OUT   {"cases": [{"a", "b", "method": "auto|asymptotic|exact"}]}
    stats_reference.py bh      IN OUT   {"p": [...]}
    stats_reference.py cka     IN OUT   {"X": [[...]], "Y": [[...]], "rows": [...] | null}
    stats_reference.py boot    IN OUT   {"groups", "values", "seed", "n_boot", "ci"}
    stats_reference.py perm    IN OUT   {"labels", "values", "groups" | null, "seed", "n_perm"}
    stats_reference.py probe   IN OUT   {"X", "y", "fold", "k", "C", "X_eval" (optional: transfer)}
    stats_reference.py xl      IN OUT   {"layers": [{"en": [[...]], "ar": [[...]]}], "y": [...],
                                         optional "groups", "seed", "n_boot", "ci": cosine CIs}
    stats_reference.py rng     IN OUT   {"seed", "n", "below"}     (self-check of the RNG port)

Definitions used:
  * Cohen's d: (mean_a - mean_b) / pooled SD, pooled variance
    ((n_a-1) var_a + (n_b-1) var_b) / (n_a + n_b - 2), var with ddof=1.
  * Mann-Whitney: scipy.stats.mannwhitneyu(a, b, alternative='two-sided',
    use_continuity=True, method=...).
  * Benjamini-Hochberg: q_i = min over j with p_j >= p_i of p_j * m / rank_j,
    capped at 1 (the textbook step-up definition, O(m^2) on purpose:
    statsmodels is not installed and scipy 1.10 predates
    false_discovery_control).
  * Linear CKA (Kornblith et al. 2019, eq. for HSIC with the centring matrix
    H = I - 11^T/n): HSIC(K, L) = tr(K H L H), K = X X^T, L = Y Y^T,
    CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).
  * Bootstrap: resample images with replacement using xoshiro256** seeded by
    splitmix64 (Blackman & Vigna; the generator saecap documents in
    base/rng.h), uniform integers below n by rejection of the top partial
    block; percentile CI with numpy.percentile (linear).
  * Probe: L2-regularised logistic regression minimising
    0.5 (|w|^2 + b^2) + C sum log(1 + exp(-y (w.z + b))) with y in {-1, +1},
    z = (x - mean) / std over the training rows (std ddof=0; constant
    columns -> 0) -- LIBLINEAR's L2R_LR objective with bias=1 -- solved with
    scipy.optimize (trust-exact, analytic gradient and Hessian).
"""
import json
import sys

import numpy as np

# scipy is imported where it is used: it takes most of a call's start-up time.

M64 = (1 << 64) - 1


class Xoshiro:
    """xoshiro256** with splitmix64 seeding."""

    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, n):
        limit = M64 - (M64 % n)
        while True:
            x = self.next()
            if x < limit:
                return x % n

    def shuffle(self, items):
        for i in range(len(items), 1, -1):
            j = self.below(i)
            items[i - 1], items[j] = items[j], items[i - 1]


def cohen(inp):
    out = []
    for c in inp["cases"]:
        a, b = np.asarray(c["a"], float), np.asarray(c["b"], float)
        if len(a) < 2 or len(b) < 2:
            out.append({"d": 0.0, "status": "too_few_samples"})
            continue
        sp2 = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
        if sp2 <= 0:
            out.append({"d": 0.0, "status": "zero_variance"})
            continue
        out.append({"d": float((a.mean() - b.mean()) / np.sqrt(sp2)), "status": "ok"})
    return {"cases": out}


def mwu(inp):
    from scipy import stats

    out = []
    for c in inp["cases"]:
        r = stats.mannwhitneyu(c["a"], c["b"], alternative="two-sided", use_continuity=True,
                               method=c.get("method", "auto"))
        p = float(r.pvalue)
        if not np.isfinite(p):
            p = 1.0
        out.append({"u1": float(r.statistic), "p": p})
    return {"cases": out}


def bh(inp):
    p = np.asarray(inp["p"], float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    rank = np.empty(m, int)
    rank[order] = np.arange(1, m + 1)
    q = np.empty(m)
    for i in range(m):
        cand = [p[j] * m / rank[j] for j in range(m) if rank[j] >= rank[i]]
        q[i] = min(1.0, min(cand))
    return {"q": q.tolist()}


def cka_value(X, Y):
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T
    hkl = np.trace(K @ H @ L @ H)
    hkk = np.trace(K @ H @ K @ H)
    hll = np.trace(L @ H @ L @ H)
    return float(hkl / np.sqrt(hkk * hll))


def cka(inp):
    X, Y = np.asarray(inp["X"], float), np.asarray(inp["Y"], float)
    if inp.get("rows") is not None:
        X, Y = X[inp["rows"]], Y[inp["rows"]]
    return {"cka": cka_value(X, Y)}


def group_members(groups):
    ids = sorted(set(groups))
    members = [[i for i, g in enumerate(groups) if g == gid] for gid in ids]
    return ids, members


def boot(inp):
    groups, values = inp["groups"], np.asarray(inp["values"], float)
    ids, members = group_members(groups)
    rng = Xoshiro(inp["seed"])
    stat = []
    first_draws = []
    for b in range(inp["n_boot"]):
        rows = []
        for _ in range(len(ids)):
            gi = rng.below(len(ids))
            if b == 0:
                first_draws.append(gi)
            rows.extend(members[gi])
        stat.append(values[rows].mean())
    stat = np.asarray(stat)
    a = (1 - inp["ci"]) / 2
    return {"lo": float(np.percentile(stat, 100 * a)), "hi": float(np.percentile(stat, 100 * (1 - a))),
            "se": float(stat.std(ddof=1)), "first_draws": first_draws}


def perm(inp):
    labels = list(inp["labels"])
    values = np.asarray(inp["values"], float)

    def t(lab):
        lab = np.asarray(lab)
        return values[lab == 1].mean() - values[lab == 0].mean()

    obs = t(labels)
    rng = Xoshiro(inp["seed"])
    n = len(labels)
    ge = 0
    if inp.get("groups") is not None:
        ids, members = group_members(inp["groups"])
        glab = [labels[m[0]] for m in members]
        for _ in range(inp["n_perm"]):
            rng.shuffle(glab)
            lab = [0] * n
            for k, m in enumerate(members):
                for r in m:
                    lab[r] = glab[k]
            ge += abs(t(lab)) >= abs(obs) - 1e-12 * max(1.0, abs(obs))
    else:
        for _ in range(inp["n_perm"]):
            lab = list(labels)
            rng.shuffle(lab)
            ge += abs(t(lab)) >= abs(obs) - 1e-12 * max(1.0, abs(obs))
    return {"observed": float(obs), "p": (1 + ge) / (1 + inp["n_perm"])}


def fit_lr(Z, y, C):
    """min 0.5 |theta|^2 + C sum log(1 + exp(-y theta.[z, 1]))"""
    from scipy import optimize

    Za = np.hstack([Z, np.ones((Z.shape[0], 1))])

    def f(th):
        m = y * (Za @ th)
        return 0.5 * th @ th + C * np.logaddexp(0, -m).sum()

    def g(th):
        m = y * (Za @ th)
        s = 1 / (1 + np.exp(m))  # sigma(-m)
        return th - C * Za.T @ (y * s)

    def h(th):
        m = y * (Za @ th)
        s = 1 / (1 + np.exp(m))
        return np.eye(len(th)) + C * (Za.T * (s * (1 - s))) @ Za

    r = optimize.minimize(f, np.zeros(Za.shape[1]), jac=g, hess=h, method="trust-exact",
                          options={"gtol": 1e-12, "maxiter": 1000})
    return r.x[:-1], r.x[-1]


def probe(inp):
    X = np.asarray(inp["X"], float)
    y01 = np.asarray(inp["y"], int)
    fold = np.asarray(inp["fold"], int)
    pred = np.zeros(len(y01), int)
    score = np.zeros(len(y01))
    Xe = np.asarray(inp["X_eval"], float) if inp.get("X_eval") is not None else None
    pred_e = np.zeros(len(y01), int)
    for f in range(inp["k"]):
        tr, te = fold != f, fold == f
        mu = X[tr].mean(axis=0)
        sd = X[tr].std(axis=0)
        inv = np.where(sd > 1e-12 * np.maximum(1, np.abs(mu)), 1 / np.where(sd > 0, sd, 1), 0.0)
        Ztr = (X[tr] - mu) * inv
        w, b = fit_lr(Ztr, np.where(y01[tr] == 1, 1.0, -1.0), inp["C"])
        s = ((X[te] - mu) * inv) @ w + b
        score[te] = s
        pred[te] = (s > 0).astype(int)
        if Xe is not None:
            pred_e[te] = ((((Xe[te] - mu) * inv) @ w + b) > 0).astype(int)
    acc = float((pred == y01).mean())
    out = {"pred": pred.tolist(), "score": score.tolist(), "acc": acc}
    if Xe is not None:
        out["pred_eval"] = pred_e.tolist()
        out["acc_eval"] = float((pred_e == y01).mean())
    return out


def xl(inp):
    y = np.asarray(inp["y"], int)
    out = []
    for L in inp["layers"]:
        en, ar = np.asarray(L["en"], float), np.asarray(L["ar"], float)
        de = en[y == 1].mean(axis=0) - en[y == 0].mean(axis=0)
        da = ar[y == 1].mean(axis=0) - ar[y == 0].mean(axis=0)
        cos = float(de @ da / (np.linalg.norm(de) * np.linalg.norm(da)))
        out.append({"en_norm": float(np.linalg.norm(de)), "ar_norm": float(np.linalg.norm(da)),
                    "cosine": cos, "cka": cka_value(en, ar)})
    if inp.get("groups") is not None:
        # Bootstrap CI of the cosine, resampling images. The bootstrap seed is
        # derived from the run seed as docs/results/cross_lingual_analysis.md
        # says: the first output of xoshiro256** seeded with
        # seed XOR (0x9E3779B97F4A7C15 * 1 mod 2^64).
        boot_seed = Xoshiro(inp["seed"] ^ 0x9E3779B97F4A7C15).next()
        ids, members = group_members(inp["groups"])
        rng = Xoshiro(boot_seed)
        draws = []
        for _ in range(inp["n_boot"]):
            rows = []
            for _ in range(len(ids)):
                rows.extend(members[rng.below(len(ids))])
            draws.append(np.asarray(rows))
        a = (1 - inp["ci"]) / 2
        for li, L in enumerate(inp["layers"]):
            en, ar = np.asarray(L["en"], float), np.asarray(L["ar"], float)
            vals = []
            for rows in draws:
                yr = y[rows]
                if yr.min() == yr.max():
                    continue
                de = en[rows][yr == 1].mean(axis=0) - en[rows][yr == 0].mean(axis=0)
                da = ar[rows][yr == 1].mean(axis=0) - ar[rows][yr == 0].mean(axis=0)
                vals.append(de @ da / (np.linalg.norm(de) * np.linalg.norm(da)))
            out[li]["cosine_ci"] = [float(np.percentile(vals, 100 * a)),
                                    float(np.percentile(vals, 100 * (1 - a)))]
            out[li]["bootstrap_valid"] = len(vals)
    return {"layers": out}


def rng_check(inp):
    r = Xoshiro(inp["seed"])
    return {"u64": [str(r.next()) for _ in range(inp["n"])],
            "below": [r.below(inp["below"]) for _ in range(inp["n"])]}


def main():
    cmd, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(src) as fh:
        inp = json.load(fh)
    fn = {"cohen": cohen, "mwu": mwu, "bh": bh, "cka": cka, "boot": boot, "perm": perm,
          "probe": probe, "xl": xl, "rng": rng_check}[cmd]
    with open(dst, "w") as fh:
        json.dump(fn(inp), fh)


if __name__ == "__main__":
    main()
