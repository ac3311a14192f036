#!/usr/bin/python3
"""g3_reference.py: an independent numpy reference of Gemma 3 (Gemma3ForConditionalGeneration).

Written only from /work/shared/research/gemma3_spec.md (cited as §x.y) and, where the spec left
something open, the Hugging Face transformers sources (cited as HF <file>:<class/function>);
NOT from saecap's C code. numpy only (Debian python3-numpy); Pillow is used only to open/decode
image files (and as a cross-check of the resize in `selftest`).

Numerics ("f32 reference mode"): every weight is read as stored (BF16/F16/F32) and widened
exactly to float32. By default all arithmetic is then done in float64 (matmuls, norms, softmax,
GELU), which makes this a tighter oracle than any f32 engine; `--f32` does the maths in float32
instead. Exceptions, on purpose, to mirror HF: RoPE angles are formed in float32 exactly as HF does
(§3.2 step 4; `--rope f64` for exact angles), the embedding scale is rounded to the embedding's
stored dtype (§3.1; `--embed-scale`), and image preprocessing follows PIL/HF bit for bit (§4.1).
All outputs are written as float32.

CLI:
  g3_reference.py forward --model DIR --ids "2 105 ..." [--image PATH ...] --out OUT.npz
  g3_reference.py selftest
  g3_reference.py check DIR [DIR ...]
  g3_reference.py make-tiny OUT_DIR [--prefix old|new] [--config old|new] [--seed N]
  g3_reference.py preprocess --model DIR --image PATH --out OUT.npz
See README.md next to this file.
"""
import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_numpy import SafeTensorsDir, bf16_to_f32, round_to_bf16, save_file  # noqa: E402

# ----------------------------------------------------------------------------------------------
# §1 Configuration: config.json + transformers class defaults
# ----------------------------------------------------------------------------------------------

# HF configuration_gemma3.py Gemma3TextConfig.__init__ defaults (§1.1 "everything else comes from
# the transformers class defaults").
TEXT_DEFAULTS = {
    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "attention_bias": False,
    "query_pre_attn_scalar": 256, "sliding_window": 4096, "final_logit_softcapping": None,
    "attn_logit_softcapping": None, "rope_scaling": None, "rope_local_base_freq": 10_000.0,
    "sliding_window_pattern": 6, "tie_word_embeddings": True, "use_bidirectional_attention": False,
    "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
}
# HF configuration_siglip.py SiglipVisionConfig defaults (§1.2 "defaults in HF-SIGCFG").
VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 16,
    "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
}
# HF Gemma3Config defaults (§1.2 top level).
TOP_DEFAULTS = {"mm_tokens_per_image": 256, "boi_token_index": 255999, "eoi_token_index": 256000,
                "image_token_index": 262144}
# §1.4 preprocessor_config.json defaults (Gemma3ImageProcessor).
PREPROC_DEFAULTS = {"do_resize": True, "do_rescale": True, "do_normalize": True, "resample": 2,
                    "rescale_factor": 1 / 255, "image_mean": [0.5, 0.5, 0.5],
                    "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True, "do_pan_and_scan": False}


def _fill(d, defaults):
    out = dict(defaults)
    for k, v in (d or {}).items():
        out[k] = v
    return out


def _rope_parameters(tc):
    """Per-layer-type RoPE parameters (§1.1 'Newer config formats').
    New form: text_config.rope_parameters = {full_attention: {...}, sliding_attention: {...}}.
    Old form: rope_scaling (+rope_theta) -> full_attention only; rope_local_base_freq -> sliding
    (HF-CFG5: 'merging rope_scaling into full_attention only')."""
    rp = tc.get("rope_parameters")
    theta_full = tc.get("rope_theta") or TEXT_DEFAULTS["rope_theta"]
    theta_local = tc.get("rope_local_base_freq") or TEXT_DEFAULTS["rope_local_base_freq"]
    if isinstance(rp, dict) and ("full_attention" in rp or "sliding_attention" in rp):
        full = dict(rp.get("full_attention") or {})
        slid = dict(rp.get("sliding_attention") or {})
        full.setdefault("rope_theta", theta_full)
        slid.setdefault("rope_theta", theta_local)
    else:
        # Old form. A flat rope_parameters dict (no layer-type keys) is treated like rope_scaling
        # that also carries rope_theta (choice: there is no Gemma 3 file of that shape we know of).
        scaling = dict(rp) if isinstance(rp, dict) else dict(tc.get("rope_scaling") or {})
        full = dict(scaling)
        full.setdefault("rope_theta", theta_full)
        slid = {"rope_type": "default", "rope_theta": theta_local}
    for p in (full, slid):
        # rope_scaling uses "type" in older files, "rope_type" in newer (HF rope_config_validation)
        p["rope_type"] = p.get("rope_type", p.get("type", "default"))
        if p["rope_type"] not in ("default", "linear"):
            raise NotImplementedError(f"rope_type {p['rope_type']} (only default/linear are Gemma 3)")
        if p["rope_type"] == "linear":
            p["factor"] = float(p["factor"])
    return {"full_attention": full, "sliding_attention": slid}


def load_config(model_dir):
    """config.json -> {'text','vision','top','rope','layer_types','architectures','preproc'} with
    all transformers defaults filled in. Accepts the VLM form (text_config/vision_config) and a
    flat gemma3_text config (text only)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        raw = json.load(f)
    if "text_config" in raw or raw.get("model_type") == "gemma3":
        tc = _fill(raw.get("text_config"), TEXT_DEFAULTS)
        vc = _fill(raw.get("vision_config"), VISION_DEFAULTS)
        top = {}
        for k, dflt in TOP_DEFAULTS.items():
            alias = k.replace("_index", "_id")  # HF Gemma3Config.attribute_map aliases
            top[k] = raw.get(k, raw.get(alias, dflt))
            if top[k] is None:
                top[k] = dflt
        has_vision = True
    else:
        tc = _fill(raw, TEXT_DEFAULTS)
        vc, top, has_vision = None, dict(TOP_DEFAULTS), False
    for k in ("head_dim", "num_key_value_heads", "query_pre_attn_scalar", "rms_norm_eps",
              "sliding_window"):
        if tc.get(k) is None:
            tc[k] = TEXT_DEFAULTS[k]
    # layer types (§1.1): explicit list wins; else full iff (i+1) % pattern == 0
    # (HF modular_gemma3.py Gemma3TextConfig: 'sliding_attention' if bool((i+1) % pattern)).
    lt = tc.get("layer_types")
    if not lt:
        pat = tc.get("sliding_window_pattern") or 6
        lt = ["sliding_attention" if (i + 1) % pat else "full_attention"
              for i in range(tc["num_hidden_layers"])]
    if len(lt) != tc["num_hidden_layers"]:
        raise ValueError(f"layer_types has {len(lt)} entries, num_hidden_layers is {tc['num_hidden_layers']}")
    pp = {}
    ppath = os.path.join(model_dir, "preprocessor_config.json")
    if os.path.exists(ppath):
        with open(ppath) as f:
            pp = json.load(f)
    pp = {k: v for k, v in pp.items() if v is not None}  # §1.4 'processor defaults fill the nulls'
    pp = _fill(pp, PREPROC_DEFAULTS)
    if "size" not in pp and vc is not None:
        pp["size"] = {"height": vc["image_size"], "width": vc["image_size"]}
    return {"text": tc, "vision": vc, "top": top, "rope": _rope_parameters(tc), "layer_types": list(lt),
            "architectures": raw.get("architectures") or [], "preproc": pp, "has_vision": has_vision}


# ----------------------------------------------------------------------------------------------
# §2 Checkpoint tensors: both prefixes, every tensor widened to float32
# ----------------------------------------------------------------------------------------------

# (file prefix, canonical prefix). §2: text P = language_model.model. | model.language_model.;
# vision V = vision_tower.vision_model. | model.vision_tower.vision_model.; projector
# multi_modal_projector. | model.multi_modal_projector.; lm_head rule "use lm_head.weight or
# language_model.lm_head.weight if present, else embed_tokens".
_PREFIXES = [
    ("language_model.model.", "text."),
    ("model.language_model.", "text."),
    ("vision_tower.vision_model.", "vision."),
    ("model.vision_tower.vision_model.", "vision."),
    ("multi_modal_projector.", "proj."),
    ("model.multi_modal_projector.", "proj."),
    ("language_model.lm_head.", "lm_head."),
    ("lm_head.", "lm_head."),
]


def canonical_name(name):
    for fp, cp in _PREFIXES:
        if name.startswith(fp):
            return cp + name[len(fp):]
    if name.startswith("model."):  # Gemma3ForCausalLM (text-only) files: model.layers.N...
        return "text." + name[len("model."):]
    return None


class Weights:
    """Canonical name -> float32 array (widened from the stored dtype, cached unless lazy)."""

    def __init__(self, model_dir, lazy=False):
        self.st = SafeTensorsDir(model_dir)
        self.map = {}
        for k in self.st.keys():
            c = canonical_name(k)
            if c is None:
                continue
            if c in self.map:
                raise ValueError(f"{k} and {self.map[c]} both map to {c}")
            self.map[c] = k
        self.lazy = lazy
        self.cache = {}

    def __contains__(self, c):
        return c in self.map

    def dtype(self, c):
        return self.st.dtype(self.map[c])

    def __getitem__(self, c):
        if c in self.cache:
            return self.cache[c]
        if c not in self.map:
            raise KeyError(f"missing tensor {c} (canonical name)")
        a = self.st.get(self.map[c], widen=True)
        if a.dtype != np.float32:
            raise ValueError(f"{self.map[c]}: non-float dtype {self.st.dtype(self.map[c])}")
        if not self.lazy:
            self.cache[c] = a
        return a


# ----------------------------------------------------------------------------------------------
# Small maths helpers
# ----------------------------------------------------------------------------------------------

def rms_norm_1pw(x, w, eps, dt):
    """§3 notation: RMS(x; w) = x / sqrt(mean(x^2) + eps) * (1 + w)   (HF Gemma3RMSNorm:
    x * rsqrt(mean(x^2)+eps) then * (1 + w))."""
    x = x.astype(dt, copy=False)
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + dt(eps)) * (dt(1) + w.astype(dt, copy=False))


def layer_norm(x, w, b, eps, dt):
    """§4.3 LayerNorm: (x - mean) / sqrt(var + eps) * w + b, biased variance."""
    x = x.astype(dt, copy=False)
    mu = np.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    return xc / np.sqrt(var + dt(eps)) * w.astype(dt) + b.astype(dt)


def gelu_tanh(x):
    """§3 gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (gelu_pytorch_tanh)."""
    c = x.dtype.type(math.sqrt(2.0 / math.pi))
    return x.dtype.type(0.5) * x * (x.dtype.type(1) + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))


def gelu_erf(x):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)))).astype(x.dtype)


def activation(name):
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu_tanh"):
        return gelu_tanh
    if name == "gelu":
        return gelu_erf
    raise NotImplementedError(f"activation {name}")


def linear(x, w, b=None, dt=np.float64):
    """PyTorch nn.Linear convention (§2): W is [out, in], y = x W^T (+ b)."""
    y = x.astype(dt, copy=False) @ w.astype(dt, copy=False).T
    if b is not None:
        y = y + b.astype(dt)
    return y


def softmax(s, axis=-1):
    m = np.max(s, axis=axis, keepdims=True)
    e = np.exp(s - m)
    return e / np.sum(e, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------------
# §3.2 step 4: RoPE (rotate-half / NeoX layout)
# ----------------------------------------------------------------------------------------------

def rope_inv_freq(head_dim, params, mode="f32"):
    """inv_freq[j] = 1 / base^(2j/head_dim), j < head_dim/2; linear scaling divides by factor
    (§3.2 step 4; HF modeling_rope_utils _compute_linear_scaling_rope_parameters).
    mode 'f32' reproduces HF's float32 computation (arange(0,dim,2).float()/dim, base**e, 1/x, all
    float32, HF Gemma3RotaryEmbedding.compute_default_rope_parameters); 'f64' is exact."""
    base = float(params["rope_theta"])
    if mode == "f32":
        e = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
        pw = np.power(np.float64(base), e.astype(np.float64)).astype(np.float32)
        inv = (np.float32(1.0) / pw).astype(np.float32)
        if params["rope_type"] == "linear":
            inv = (inv / np.float32(params["factor"])).astype(np.float32)
        return inv
    inv = 1.0 / np.power(base, np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if params["rope_type"] == "linear":
        inv = inv / params["factor"]
    return inv


def rope_cos_sin(positions, inv_freq, mode="f32"):
    """cos/sin [T, head_dim] of theta = p * inv_freq[j], duplicated for both halves
    (HF emb = cat(freqs, freqs)); attention_scaling = 1 (§3.2 step 4). In 'f32' mode the angle
    p*inv_freq is rounded to float32 as in HF (fp32 matmul with autocast disabled)."""
    p = np.asarray(positions)
    if mode == "f32":
        ang = (p.astype(np.float32)[:, None] * inv_freq.astype(np.float32)[None, :]).astype(np.float32)
        ang = ang.astype(np.float64)
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    else:
        ang = p.astype(np.float64)[:, None] * inv_freq[None, :]
        cos, sin = np.cos(ang), np.sin(ang)
    return np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)


def apply_rope(x, cos, sin):
    """x [T, heads, D]: x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x[D/2:], x[:D/2]).
    i.e. x'[j] = x[j]cos - x[j+D/2]sin, x'[j+D/2] = x[j+D/2]cos + x[j]sin (§3.2 step 4)."""
    d2 = x.shape[-1] // 2
    rot = np.concatenate([-x[..., d2:], x[..., :d2]], -1)
    c = cos[:, None, :].astype(x.dtype)
    s = sin[:, None, :].astype(x.dtype)
    return x * c + rot * s


# ----------------------------------------------------------------------------------------------
# §3.3 Attention masks
# ----------------------------------------------------------------------------------------------

def image_group_ids(ids, image_token_id):
    """§3.3: token_type 1 only for <image_soft_token>; consecutive runs form groups 0,1,...;
    text gets -1 (HF modeling_gemma3.py create_causal_mask_mapping: new_image_start, cumsum-1)."""
    is_img = np.asarray(ids) == image_token_id
    prev = np.concatenate([[False], is_img[:-1]])
    start = is_img & ~prev
    g = np.cumsum(start.astype(np.int64)) - 1
    return np.where(is_img, g, -1)


def build_mask(T, layer_type, sliding_window, groups=None, image_mask="or", bidirectional=False):
    """Boolean [T(q), T(k)], True = may attend.
    - causal: k <= q (HF masking_utils causal_mask_function)
    - sliding layers: additionally k > q - W (HF masking_utils sliding_window_overlay,
      'kv_idx > q_idx - sliding_window'): the last W positions including self (§3.3)
    - image groups (groups[t] >= 0): OR-ed on both layer types when both q and k are in the same
      group (§3.3; HF token_type_ids_mask_function, or_mask_function). image_mask='window'
      instead ANDs the image overlay with |q-k| < W on sliding layers (JAX reference, HF PR #46850)
    - bidirectional=True: config use_bidirectional_attention (EmbeddingGemma; HF
      Gemma3TextModel.forward: full layers all-True, sliding layers |q-k| < W)."""
    q = np.arange(T)[:, None]
    k = np.arange(T)[None, :]
    sliding = layer_type == "sliding_attention"
    m = k <= q
    if sliding:
        m = m & (k > q - sliding_window)
    if bidirectional:
        m = m | (np.abs(q - k) < sliding_window if sliding else np.ones((T, T), bool))
    if groups is not None:
        g = np.asarray(groups)
        blk = (g[:, None] >= 0) & (g[:, None] == g[None, :])
        if image_mask == "window" and sliding:
            blk = blk & (np.abs(q - k) < sliding_window)
        m = m | blk
    return m


def attention(q, k, v, mask, scale, softcap, dt):
    """q [T,H,D], k/v [T,KV,D]; query head h uses KV head h // (H/KV) (HF repeat_kv, §3.2 step 5).
    S = q.k * scale, optional tanh softcap, mask, softmax over keys, O = P v. -> [T, H*D]."""
    T, H, D = q.shape
    KV = k.shape[1]
    rep = H // KV
    kr = np.repeat(k, rep, axis=1)  # [T,H,D]: head h <- kv head h // rep (repeat_interleave)
    vr = np.repeat(v, rep, axis=1)
    s = np.matmul(q.transpose(1, 0, 2), kr.transpose(1, 2, 0)) * dt(scale)  # [H,T,T]
    if softcap is not None:
        s = np.tanh(s / dt(softcap)) * dt(softcap)
    s = np.where(mask[None], s, -np.inf)
    p = softmax(s, -1)
    o = np.matmul(p, vr.transpose(1, 0, 2))  # [H,T,D]
    return o.transpose(1, 0, 2).reshape(T, H * D)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------

class Gemma3Reference:
    def __init__(self, model_dir, f32=False, lazy=False, rope_mode="f32", embed_scale="stored",
                 image_mask="or", final_softcap="auto"):
        self.dir = model_dir
        self.cfg = load_config(model_dir)
        self.w = Weights(model_dir, lazy=lazy)
        self.dt = np.float32 if f32 else np.float64
        self.rope_mode = rope_mode
        self.embed_scale_mode = embed_scale
        self.image_mask = image_mask
        self.final_softcap = final_softcap
        self._check_shapes()

    # -- shapes (§2), from the config only
    def _check_shapes(self):
        tc = self.cfg["text"]
        d, hd = tc["hidden_size"], tc["head_dim"]
        H, KV, I = tc["num_attention_heads"], tc["num_key_value_heads"], tc["intermediate_size"]
        exp = {"text.embed_tokens.weight": (tc["vocab_size"], d), "text.norm.weight": (d,)}
        for L in range(tc["num_hidden_layers"]):
            p = f"text.layers.{L}."
            exp.update({
                p + "input_layernorm.weight": (d,), p + "self_attn.q_proj.weight": (H * hd, d),
                p + "self_attn.k_proj.weight": (KV * hd, d), p + "self_attn.v_proj.weight": (KV * hd, d),
                p + "self_attn.o_proj.weight": (d, H * hd), p + "self_attn.q_norm.weight": (hd,),
                p + "self_attn.k_norm.weight": (hd,), p + "post_attention_layernorm.weight": (d,),
                p + "pre_feedforward_layernorm.weight": (d,), p + "mlp.gate_proj.weight": (I, d),
                p + "mlp.up_proj.weight": (I, d), p + "mlp.down_proj.weight": (d, I),
                p + "post_feedforward_layernorm.weight": (d,)})
        vc = self.cfg["vision"]
        if vc is not None and "vision.embeddings.patch_embedding.weight" in self.w:
            D, C, P, Iv = vc["hidden_size"], vc["num_channels"], vc["patch_size"], vc["intermediate_size"]
            n = (vc["image_size"] // P) ** 2
            exp.update({"vision.embeddings.patch_embedding.weight": (D, C, P, P),
                        "vision.embeddings.patch_embedding.bias": (D,),
                        "vision.embeddings.position_embedding.weight": (n, D),
                        "vision.post_layernorm.weight": (D,), "vision.post_layernorm.bias": (D,),
                        "proj.mm_input_projection_weight": (D, d), "proj.mm_soft_emb_norm.weight": (D,)})
            for L in range(vc["num_hidden_layers"]):
                p = f"vision.encoder.layers.{L}."
                for nm in ("layer_norm1", "layer_norm2"):
                    exp[p + nm + ".weight"] = (D,)
                    exp[p + nm + ".bias"] = (D,)
                for nm in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    exp[p + f"self_attn.{nm}.weight"] = (D, D)
                    exp[p + f"self_attn.{nm}.bias"] = (D,)
                exp.update({p + "mlp.fc1.weight": (Iv, D), p + "mlp.fc1.bias": (Iv,),
                            p + "mlp.fc2.weight": (D, Iv), p + "mlp.fc2.bias": (D,)})
        for c, shp in exp.items():
            if c not in self.w:
                raise KeyError(f"checkpoint lacks {c}")
            got = tuple(self.w.st.shape(self.w.map[c]))
            if got != shp:
                raise ValueError(f"{self.w.map[c]}: shape {got}, config implies {shp}")

    # -- §3.1 embedding scale
    def embed_scale(self):
        """HF Gemma3TextScaledWordEmbedding: embed_scale = torch.tensor(hidden**0.5) (float32)
        then .to(weight.dtype) before multiplying. 'stored' rounds to the stored dtype of
        embed_tokens (§3.1 recommendation: bf16 -> 50.5 for 2560; F32 checkpoints -> f32 sqrt);
        'f32' = float32(sqrt(hidden)) (what HF does when run with torch_dtype=float32);
        'exact' = sqrt(hidden) in float64 (llama.cpp-like)."""
        h = self.cfg["text"]["hidden_size"]
        s32 = np.float32(math.sqrt(h))
        if self.embed_scale_mode == "exact":
            return math.sqrt(h)
        if self.embed_scale_mode == "f32":
            return float(s32)
        dt = self.w.dtype("text.embed_tokens.weight")
        if dt == "BF16":
            return float(round_to_bf16(s32))
        if dt == "F16":
            return float(np.float16(s32))
        return float(s32)

    def lm_head(self):
        # §2 loader rule; §3.4 logits = y E^T (tied)
        return self.w["lm_head.weight"] if "lm_head.weight" in self.w else self.w["text.embed_tokens.weight"]

    # -- §3.2 one decoder layer
    def decoder_layer(self, L, x, mask, cos, sin, trace=None):
        tc, dt, W = self.cfg["text"], self.dt, self.w
        eps = tc["rms_norm_eps"]
        H, KV, hd = tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
        p = f"text.layers.{L}."
        b = (lambda n: W[p + n] if tc["attention_bias"] else None)
        T = x.shape[0]
        a = rms_norm_1pw(x, W[p + "input_layernorm.weight"], eps, dt)                     # step 1
        q = linear(a, W[p + "self_attn.q_proj.weight"], b("self_attn.q_proj.bias"), dt)   # step 2
        k = linear(a, W[p + "self_attn.k_proj.weight"], b("self_attn.k_proj.bias"), dt)
        v = linear(a, W[p + "self_attn.v_proj.weight"], b("self_attn.v_proj.bias"), dt)
        q = q.reshape(T, H, hd)   # head-major split: head h = output features h*hd .. h*hd+hd-1
        k = k.reshape(T, KV, hd)
        v = v.reshape(T, KV, hd)
        q = rms_norm_1pw(q, W[p + "self_attn.q_norm.weight"], eps, dt)                    # step 3
        k = rms_norm_1pw(k, W[p + "self_attn.k_norm.weight"], eps, dt)
        q = apply_rope(q, cos, sin)                                                        # step 4
        k = apply_rope(k, cos, sin)
        scale = float(tc["query_pre_attn_scalar"]) ** -0.5                                # step 5
        o = attention(q, k, v, mask, scale, tc["attn_logit_softcapping"], dt)
        attn = linear(o, W[p + "self_attn.o_proj.weight"], b("self_attn.o_proj.bias"), dt)  # step 6
        x = x + rms_norm_1pw(attn, W[p + "post_attention_layernorm.weight"], eps, dt)     # step 7
        m = rms_norm_1pw(x, W[p + "pre_feedforward_layernorm.weight"], eps, dt)           # step 8
        act = activation(tc["hidden_activation"])
        f = act(linear(m, W[p + "mlp.gate_proj.weight"], None, dt)) * linear(m, W[p + "mlp.up_proj.weight"], None, dt)
        f = linear(f, W[p + "mlp.down_proj.weight"], None, dt)
        x = x + rms_norm_1pw(f, W[p + "post_feedforward_layernorm.weight"], eps, dt)      # step 9
        if trace is not None:
            trace.update({f"attn_out.{L}": attn, f"mlp_out.{L}": f})
        return x

    def text_forward(self, ids, image_embeds=None, image_token_id=None, bidirectional_images=True,
                     positions=None, trace=False):
        """ids [T] -> {'embeds' [T,d], 'resid_post.L' [T,d] (= HF hidden_states[L+1] for
        L < n_layers-1; the last one un-normed), 'final_norm' [T,d], 'logits' [T,V]}.
        image_embeds: [n_img, mm_tokens, d] or [N, d] projector outputs, placed in order at the
        image_token_id positions (§4.5) without the sqrt(d) scale (§3.1).
        bidirectional_images: OR the same-image block onto the masks (§3.3). HF does this whenever
        the processor's token_type_ids are passed and there is no initialised cache (prefill),
        independent of whether pixel_values are passed (HF create_causal_mask_mapping
        may_have_image_input)."""
        tc, dt = self.cfg["text"], self.dt
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        T = ids.shape[0]
        V = tc["vocab_size"]
        itok = self.cfg["top"]["image_token_index"] if image_token_id is None else image_token_id
        look = ids.copy()
        if itok >= V:  # HF Gemma3Model.forward: OOV image id replaced by 0 (PAD) for the lookup
            look[ids == itok] = 0
        if look.min() < 0 or look.max() >= V:
            raise ValueError(f"token id out of range [0,{V})")
        E = self.w["text.embed_tokens.weight"]
        h = E[look].astype(dt) * dt(self.embed_scale())                                  # §3.1
        if image_embeds is not None:                                                       # §4.5
            ie = np.asarray(image_embeds).reshape(-1, tc["hidden_size"])
            pos = np.nonzero(ids == itok)[0]
            if pos.size != ie.shape[0]:
                raise ValueError(f"{pos.size} image tokens in ids but {ie.shape[0]} image features")
            h[pos] = ie.astype(dt)
        out = {"embeds": h}
        tr = {} if trace else None
        groups = image_group_ids(ids, itok) if bidirectional_images and (ids == itok).any() else None
        if positions is None:
            positions = np.arange(T)  # §3.6 plain 0-based positions
        masks, rope = {}, {}
        for lt in set(self.cfg["layer_types"]):
            masks[lt] = build_mask(T, lt, tc["sliding_window"], groups, self.image_mask,
                                   bool(tc.get("use_bidirectional_attention")))
            inv = rope_inv_freq(tc["head_dim"], self.cfg["rope"][lt], self.rope_mode)
            rope[lt] = rope_cos_sin(positions, inv, self.rope_mode)
        for L, lt in enumerate(self.cfg["layer_types"]):
            h = self.decoder_layer(L, h, masks[lt], rope[lt][0], rope[lt][1], tr)
            out[f"resid_post.{L}"] = h
        y = rms_norm_1pw(h, self.w["text.norm.weight"], tc["rms_norm_eps"], dt)          # §3.4
        out["final_norm"] = y
        logits = linear(y, self.lm_head(), None, dt)
        cap = tc.get("final_logit_softcapping")
        # §3.4: Gemma3ForConditionalGeneration never softcaps logits; Gemma3ForCausalLM does when
        # final_logit_softcapping is set (HF modeling_gemma3.py Gemma3ForCausalLM.forward).
        use_cap = {"auto": "Gemma3ForCausalLM" in self.cfg["architectures"], "on": True,
                   "off": False}[self.final_softcap]
        if cap is not None and use_cap:
            logits = np.tanh(logits / dt(cap)) * dt(cap)
        out["logits"] = logits
        if tr:
            out.update(tr)
        return out

    # -- §4.2 patch embedding
    def patch_embed(self, img):
        """img [C,H,W] -> [n_patches, D]: Conv2d(k=stride=P, 'valid', bias) as a matmul; patch
        (py,px) vector u[c*P*P + ky*P + kx] = pixel[c][P*py+ky][P*px+kx], row n = py*gw + px."""
        vc, dt, W = self.cfg["vision"], self.dt, self.w
        P, D = vc["patch_size"], vc["hidden_size"]
        C, Hh, Ww = img.shape
        gh, gw = Hh // P, Ww // P
        u = img[:, :gh * P, :gw * P].reshape(C, gh, P, gw, P).transpose(1, 3, 0, 2, 4).reshape(gh * gw, C * P * P)
        wflat = W["vision.embeddings.patch_embedding.weight"].reshape(D, C * P * P)
        return linear(u, wflat, W["vision.embeddings.patch_embedding.bias"], dt)

    # -- §4.2-4.3 SigLIP vision tower
    def vision_tower(self, pixel_values):
        """pixel_values [3,H,W] or [B,3,H,W] -> post_layernorm output [B, n_patches, D]."""
        vc, dt, W = self.cfg["vision"], self.dt, self.w
        pv = np.asarray(pixel_values, dtype=np.float32)
        if pv.ndim == 3:
            pv = pv[None]
        B, C, Hh, Ww = pv.shape
        P, D = vc["patch_size"], vc["hidden_size"]
        gh, gw = Hh // P, Ww // P  # Conv2d 'valid', stride P
        outs = []
        nH = vc["num_attention_heads"]
        hdv = D // nH
        eps = vc["layer_norm_eps"]
        act = activation(vc["hidden_act"])
        for bi in range(B):
            x = self.patch_embed(pv[bi])
            x = x + W["vision.embeddings.position_embedding.weight"][: gh * gw].astype(dt)  # no CLS
            N = x.shape[0]
            for L in range(vc["num_hidden_layers"]):                                       # §4.3
                p = f"vision.encoder.layers.{L}."
                a = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps, dt)
                q = linear(a, W[p + "self_attn.q_proj.weight"], W[p + "self_attn.q_proj.bias"], dt)
                k = linear(a, W[p + "self_attn.k_proj.weight"], W[p + "self_attn.k_proj.bias"], dt)
                v = linear(a, W[p + "self_attn.v_proj.weight"], W[p + "self_attn.v_proj.bias"], dt)
                o = np.empty((N, D), dtype=dt)
                for hh in range(nH):  # no mask, scale head_dim^-0.5 (HF SiglipAttention)
                    sl = slice(hh * hdv, (hh + 1) * hdv)
                    s = (q[:, sl] @ k[:, sl].T) * dt(hdv ** -0.5)
                    o[:, sl] = softmax(s, -1) @ v[:, sl]
                x = x + linear(o, W[p + "self_attn.out_proj.weight"], W[p + "self_attn.out_proj.bias"], dt)
                a = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps, dt)
                f = act(linear(a, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"], dt))
                x = x + linear(f, W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"], dt)
            x = layer_norm(x, W["vision.post_layernorm.weight"], W["vision.post_layernorm.bias"], eps, dt)
            outs.append(x)
        return np.stack(outs)

    # -- §4.4 multimodal projector
    def projector(self, vision_out):
        """[B, n_patches, Dv] -> [B, mm_tokens_per_image, d_text]. Channel-first grid [Dv][g][g],
        AvgPool2d(kernel=stride=g/tokens_per_side), flatten row-major, (1+w) RMSNorm with the
        vision layer_norm_eps, then x @ mm_input_projection_weight ([Dv, d], not transposed)."""
        vc, dt = self.cfg["vision"], self.dt
        vo = np.asarray(vision_out).astype(dt)
        B, N, Dv = vo.shape
        g = vc["image_size"] // vc["patch_size"]           # HF patches_per_image
        tps = int(self.cfg["top"]["mm_tokens_per_image"] ** 0.5)  # HF tokens_per_side
        kz = g // tps                                       # HF kernel_size
        grid = vo.transpose(0, 2, 1).reshape(B, Dv, g, g)
        no = g // kz                                        # AvgPool2d floor mode
        pooled = grid[:, :, :no * kz, :no * kz].reshape(B, Dv, no, kz, no, kz).mean(axis=(3, 5))
        tok = pooled.reshape(B, Dv, no * no).transpose(0, 2, 1)   # token j = R*no + C
        nrm = rms_norm_1pw(tok, self.w["proj.mm_soft_emb_norm.weight"], vc["layer_norm_eps"], dt)
        return nrm @ self.w["proj.mm_input_projection_weight"].astype(dt, copy=False)

    def image_features(self, images):
        """list of paths/arrays -> (pixel_values [B,3,H,W], vision_out, image_embeds [B,mm,d])."""
        pv = np.stack([preprocess(im, self.cfg["preproc"]) for im in images])
        vo = self.vision_tower(pv)
        return pv, vo, self.projector(vo)


def load(model_dir, **kw):
    """Brief item 1: config with defaults + weights (either prefix) widened to float32."""
    return Gemma3Reference(model_dir, **kw)


# ----------------------------------------------------------------------------------------------
# §4.1 Image preprocessing: PIL-compatible BILINEAR (antialiased, two-pass, uint8) in numpy
# ----------------------------------------------------------------------------------------------

PRECISION_BITS = 32 - 8 - 2  # 22 fractional bits (§4.1; Pillow Resample.c PRECISION_BITS)


def _bilinear(x):
    # triangle(d) = max(0, 1-|d|) (Pillow bilinear_filter, support 1.0)
    x = -x if x < 0.0 else x
    return 1.0 - x if x < 1.0 else 0.0


def resample_coeffs(in_size, out_size):
    """Per output index i: (xmin, n, int32 weights) with the exact double arithmetic of Pillow's
    precompute_coeffs + normalize_coeffs_8bpc (§4.1 step 4):
    scale = in/out, filterscale = max(scale,1), support = 1*filterscale, center = (i+0.5)*scale,
    xmin = max(int(center-support+0.5), 0), xmax = min(int(center+support+0.5), in) (C truncation),
    w(x) = triangle((x + xmin - center + 0.5) / filterscale), normalised by the running sum,
    quantised as int(0.5 + w * 2^22) (w >= 0; negative: int(-0.5 + w*2^22))."""
    scale = float(in_size) / out_size
    filterscale = scale if scale >= 1.0 else 1.0
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    ss = 1.0 / filterscale
    xmins = np.zeros(out_size, np.int64)
    kk = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = int(center - support + 0.5)
        if xmin < 0:
            xmin = 0
        xmax = int(center + support + 0.5)
        if xmax > in_size:
            xmax = in_size
        xmax -= xmin
        ws = [_bilinear((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in ws:
            ww += w
        if ww != 0.0:
            ws = [w / ww for w in ws]
        for x, w in enumerate(ws):
            kk[xx, x] = int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))
        xmins[xx] = xmin
    return xmins, kk


def _pass(img, out_size, axis):
    """One 8-bit pass along `axis` of a uint8 array: acc = 2^21 + sum in*k; out = clip(acc>>22)."""
    in_size = img.shape[axis]
    xmins, kk = resample_coeffs(in_size, out_size)
    src = np.moveaxis(img, axis, 0).astype(np.int64)
    acc = np.full((out_size,) + src.shape[1:], 1 << (PRECISION_BITS - 1), dtype=np.int64)
    extra = (1,) * (src.ndim - 1)
    for j in range(kk.shape[1]):
        idx = np.minimum(xmins + j, in_size - 1)  # weight is 0 wherever xmin+j is out of range
        acc += src[idx] * kk[:, j].reshape((out_size,) + extra)
    out = np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)  # Pillow clip8
    return np.moveaxis(out, 0, axis)


def resize_bilinear_u8(img, out_w, out_h):
    """PIL Image.resize((out_w,out_h), BILINEAR) on an HxW[xC] uint8 array: horizontal pass then
    vertical pass, uint8 between passes, a pass skipped when that size is unchanged (§4.1 step 4;
    Pillow ImagingResampleInner need_horizontal/need_vertical)."""
    img = np.asarray(img, dtype=np.uint8)
    out = img
    if out_w != img.shape[1]:
        out = _pass(out, out_w, 1)
    if out_h != img.shape[0]:
        out = _pass(out, out_h, 0)
    return out.copy() if out is img else out


def load_image_rgb(path, exif=True):
    """Decode with Pillow, apply EXIF orientation (HF image_utils.load_image does
    ImageOps.exif_transpose, §4.1 step 1) and convert('RGB') (alpha dropped, §4.1 step 2)."""
    from PIL import Image, ImageOps
    im = Image.open(path)
    im.load()
    if exif:
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def preprocess(path_or_array, pp=None, exif=True):
    """§4.1: RGB uint8 -> resize (PIL BILINEAR) -> rescale (float64 x * rescale_factor, cast to
    float32: HF image_transforms.rescale) -> normalise ((x - mean)/std in float32:
    HF image_transforms.normalize) -> CHW float32 [3, H, W]."""
    pp = _fill(pp or {}, PREPROC_DEFAULTS)
    if isinstance(path_or_array, (str, os.PathLike)):
        img = load_image_rgb(path_or_array, exif=exif)
    else:
        img = np.asarray(path_or_array)
        if img.dtype != np.uint8:
            raise ValueError("array input must be uint8 HxWx3 RGB")
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
    if pp.get("do_pan_and_scan"):
        raise NotImplementedError("pan-and-scan (off by default, §1.4)")
    if pp["do_resize"]:
        if int(pp["resample"]) != 2:
            raise NotImplementedError("only resample=2 (PIL BILINEAR) is implemented")
        size = pp.get("size") or {}
        oh, ow = int(size["height"]), int(size["width"])
        img = resize_bilinear_u8(img, ow, oh)
    x = img.astype(np.float64)
    if pp["do_rescale"]:
        x = x * float(pp["rescale_factor"])
    x = x.astype(np.float32)
    if pp["do_normalize"]:
        mean = np.array(pp["image_mean"], dtype=np.float32)
        std = np.array(pp["image_std"], dtype=np.float32)
        x = ((x - mean) / std).astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# ----------------------------------------------------------------------------------------------
# Forward driver
# ----------------------------------------------------------------------------------------------

def forward(model, ids, images=(), bidirectional_images=True, trace=False):
    res = {"ids": np.asarray(ids, np.int64)}
    ie = None
    if images:
        pv, vo, ie = model.image_features(list(images))
        res.update({"pixel_values": pv, "vision_out": vo, "image_embeds": ie})
    res.update(model.text_forward(ids, image_embeds=ie, bidirectional_images=bidirectional_images,
                                  trace=trace))
    return res


def _to_f32(d):
    return {k: (v.astype(np.float32) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
            for k, v in d.items()}


# ----------------------------------------------------------------------------------------------
# A tiny random checkpoint in the HF layout (§2 names/shapes), for tests
# ----------------------------------------------------------------------------------------------

TINY = {
    "text": {"vocab_size": 320, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 7,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24,
             "query_pre_attn_scalar": 24, "sliding_window": 8, "rms_norm_eps": 1e-6,
             "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0,
             "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "model_type": "gemma3_text"},
    "vision": {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
               "num_attention_heads": 4, "image_size": 28, "patch_size": 7, "num_channels": 3,
               "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "vision_use_head": False,
               "model_type": "siglip_vision_model"},
    "top": {"mm_tokens_per_image": 4, "boi_token_index": 290, "eoi_token_index": 291,
            "image_token_index": 300},
}


def make_tiny(out_dir, prefix="old", config_form="old", seed=0, vision_dtype="F32"):
    """Write a random Gemma3ForConditionalGeneration checkpoint (config.json,
    preprocessor_config.json, 2 shards + model.safetensors.index.json). Text/projector BF16,
    vision `vision_dtype` (§2: re-exports may carry F32 vision tensors)."""
    rng = np.random.default_rng(seed)
    tc, vc, top = dict(TINY["text"]), dict(TINY["vision"]), dict(TINY["top"])
    d, hd, H, KV, I = tc["hidden_size"], tc["head_dim"], tc["num_attention_heads"], tc["num_key_value_heads"], tc["intermediate_size"]
    P = "language_model.model." if prefix == "old" else "model.language_model."
    VP = "vision_tower.vision_model." if prefix == "old" else "model.vision_tower.vision_model."
    MP = "multi_modal_projector." if prefix == "old" else "model.multi_modal_projector."
    r = lambda *s, sc=0.2: (rng.standard_normal(s) * sc).astype(np.float32)  # noqa: E731
    t = {P + "embed_tokens.weight": r(tc["vocab_size"], d, sc=0.5), P + "norm.weight": r(d)}
    for L in range(tc["num_hidden_layers"]):
        p = P + f"layers.{L}."
        t.update({p + "input_layernorm.weight": r(d), p + "self_attn.q_proj.weight": r(H * hd, d),
                  p + "self_attn.k_proj.weight": r(KV * hd, d), p + "self_attn.v_proj.weight": r(KV * hd, d),
                  p + "self_attn.o_proj.weight": r(d, H * hd), p + "self_attn.q_norm.weight": r(hd),
                  p + "self_attn.k_norm.weight": r(hd), p + "post_attention_layernorm.weight": r(d),
                  p + "pre_feedforward_layernorm.weight": r(d), p + "mlp.gate_proj.weight": r(I, d),
                  p + "mlp.up_proj.weight": r(I, d), p + "mlp.down_proj.weight": r(d, I),
                  p + "post_feedforward_layernorm.weight": r(d)})
    D, Iv, C, Pp = vc["hidden_size"], vc["intermediate_size"], vc["num_channels"], vc["patch_size"]
    n = (vc["image_size"] // Pp) ** 2
    v = {VP + "embeddings.patch_embedding.weight": r(D, C, Pp, Pp), VP + "embeddings.patch_embedding.bias": r(D),
         VP + "embeddings.position_embedding.weight": r(n, D), VP + "post_layernorm.weight": 1 + r(D),
         VP + "post_layernorm.bias": r(D)}
    for L in range(vc["num_hidden_layers"]):
        p = VP + f"encoder.layers.{L}."
        for nm in ("layer_norm1", "layer_norm2"):
            v[p + nm + ".weight"] = 1 + r(D)
            v[p + nm + ".bias"] = r(D)
        for nm in ("q_proj", "k_proj", "v_proj", "out_proj"):
            v[p + f"self_attn.{nm}.weight"] = r(D, D)
            v[p + f"self_attn.{nm}.bias"] = r(D)
        v.update({p + "mlp.fc1.weight": r(Iv, D), p + "mlp.fc1.bias": r(Iv),
                  p + "mlp.fc2.weight": r(D, Iv), p + "mlp.fc2.bias": r(D)})
    m = {MP + "mm_input_projection_weight": r(D, d), MP + "mm_soft_emb_norm.weight": r(D)}
    os.makedirs(out_dir, exist_ok=True)
    shard1 = {**t}
    shard2 = {**v, **m}
    dts1 = {k: "BF16" for k in shard1}
    dts2 = {k: (vision_dtype if k in v else "BF16") for k in shard2}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    save_file(shard1, os.path.join(out_dir, names[0]), dts1, {"format": "pt"})
    save_file(shard2, os.path.join(out_dir, names[1]), dts2, {"format": "pt"})
    wm = {k: names[0] for k in shard1}
    wm.update({k: names[1] for k in shard2})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f, indent=1)
    if config_form == "new":
        tcj = {k: v for k, v in tc.items() if k not in ("rope_theta", "rope_local_base_freq", "rope_scaling")}
        tcj["rope_parameters"] = {
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": tc["rope_theta"]},
            "sliding_attention": {"rope_type": "default", "rope_theta": tc["rope_local_base_freq"]}}
        tcj["layer_types"] = ["sliding_attention" if (i + 1) % 6 else "full_attention"
                              for i in range(tc["num_hidden_layers"])]
    else:
        tcj = dict(tc)
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
           "text_config": tcj, "vision_config": vc, **top}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Gemma3ImageProcessor", "do_resize": True,
                   "size": {"height": vc["image_size"], "width": vc["image_size"]}, "resample": 2,
                   "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                   "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "do_convert_rgb": None,
                   "do_pan_and_scan": None, "image_seq_length": top["mm_tokens_per_image"]}, f, indent=1)
    return out_dir


# ----------------------------------------------------------------------------------------------
# selftest
# ----------------------------------------------------------------------------------------------

class _Checks:
    def __init__(self):
        self.fail = 0
        self.n = 0

    def ok(self, cond, what):
        self.n += 1
        if not cond:
            self.fail += 1
        print(("ok   " if cond else "FAIL ") + what)


def _slow_attention_layer(model, L, x, lt, positions):
    """Loop-based re-derivation of one decoder layer's attention block (per head, per query,
    explicit window test, explicit rotation formula) used to cross-check the vectorised one."""
    tc, W = model.cfg["text"], model.w
    p = f"text.layers.{L}."
    eps, H, KV, hd = tc["rms_norm_eps"], tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
    Wq, Wk, Wv, Wo = (W[p + f"self_attn.{n}_proj.weight"].astype(np.float64) for n in "qkvo")
    T = x.shape[0]
    inv = rope_inv_freq(hd, model.cfg["rope"][lt], model.rope_mode).astype(np.float64)

    def rms(vec, w):
        return vec / math.sqrt(float(np.mean(vec * vec)) + eps) * (1.0 + w.astype(np.float64))

    def rot(vec, pos):
        out = np.empty_like(vec)
        for j in range(hd // 2):
            th = np.float32(np.float32(pos) * np.float32(inv[j])) if model.rope_mode == "f32" else pos * inv[j]
            c, s = float(np.float32(math.cos(th))), float(np.float32(math.sin(th)))
            if model.rope_mode != "f32":
                c, s = math.cos(th), math.sin(th)
            out[j] = vec[j] * c - vec[j + hd // 2] * s
            out[j + hd // 2] = vec[j + hd // 2] * c + vec[j] * s
        return out
    a = np.stack([rms(x[t], W[p + "input_layernorm.weight"]) for t in range(T)])
    qs = [[rot(rms(Wq[h * hd:(h + 1) * hd] @ a[t], W[p + "self_attn.q_norm.weight"]), positions[t])
           for h in range(H)] for t in range(T)]
    ks = [[rot(rms(Wk[g * hd:(g + 1) * hd] @ a[t], W[p + "self_attn.k_norm.weight"]), positions[t])
           for g in range(KV)] for t in range(T)]
    vs = [[Wv[g * hd:(g + 1) * hd] @ a[t] for g in range(KV)] for t in range(T)]
    o = np.zeros((T, H * hd))
    Wn = tc["sliding_window"]
    for t in range(T):
        for h in range(H):
            g = h // (H // KV)
            allowed = [u for u in range(T) if u <= t and (lt != "sliding_attention" or t - u < Wn)]
            sc = np.array([float(qs[t][h] @ ks[u][g]) / math.sqrt(tc["query_pre_attn_scalar"]) for u in allowed])
            pr = np.exp(sc - sc.max())
            pr /= pr.sum()
            o[t, h * hd:(h + 1) * hd] = sum(pr[i] * vs[u][g] for i, u in enumerate(allowed))
    return o @ Wo.T


def check_model(model_dir, ck, seed=0):
    """Invariants that must hold for ANY Gemma 3 checkpoint (used by `check` and `selftest`):
    causality of text/image forwards, vectorised attention == per-head loop derivation on the
    first sliding and first full layer, f32-math vs f64-math agreement."""
    rng = np.random.default_rng(seed)
    m = load(model_dir)
    tc = m.cfg["text"]
    itok = m.cfg["top"]["image_token_index"]
    V = tc["vocab_size"]
    hi = min(V, 1000)
    W = tc["sliding_window"]
    T = int(min(2 * W + 5, 48))
    txt = rng.integers(3, hi, T)
    txt[0] = 2
    txt[txt == itok] = 3
    full = m.text_forward(txt, trace=True)
    worst = 0.0
    for t in sorted(set([1, 2, min(W, T), min(W + 1, T), min(W + 3, T), T - 1])):
        part = m.text_forward(txt[:t])
        worst = max(worst, float(np.max(np.abs(part["logits"] - full["logits"][:t]))))
    ck.ok(worst < 1e-8, f"[{os.path.basename(model_dir.rstrip('/'))}] causality over T={T}, W={W}: "
          f"prefix forward == rows of full forward (max diff {worst:.1e})")
    lts = m.cfg["layer_types"]
    for lt in ("sliding_attention", "full_attention"):
        if lt not in lts:
            continue
        L = lts.index(lt)
        Tl = min(T, W + 4)
        tr = m.text_forward(txt[:Tl], trace=True)
        x_in = tr["embeds"] if L == 0 else tr[f"resid_post.{L - 1}"]
        slow = _slow_attention_layer(m, L, x_in, lt, np.arange(Tl))
        err = float(np.max(np.abs(slow - tr[f"attn_out.{L}"])) / max(1e-30, np.max(np.abs(slow))))
        ck.ok(err < 1e-9, f"layer {L} ({lt}) vectorised attention == per-head loop derivation (rel {err:.1e})")
    m32 = load(model_dir, f32=True)
    o32 = m32.text_forward(txt)
    rel = float(np.max(np.abs(o32["logits"] - full["logits"])) / np.max(np.abs(full["logits"])))
    ck.ok(rel < 1e-4, f"f32-math forward close to f64-math forward (rel {rel:.1e})")
    if m.cfg["has_vision"] and "vision.embeddings.patch_embedding.weight" in m.w:
        n = m.cfg["top"]["mm_tokens_per_image"]
        ids = np.concatenate([[2, 105, 10], [itok] * n, [108], rng.integers(3, hi, 6)])
        ids[3 + n + 1:][ids[3 + n + 1:] == itok] = 3
        img = rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8)
        res = forward(m, ids, [img])
        ck.ok(np.array_equal(res["embeds"][3:3 + n], res["image_embeds"][0]),
              f"{n} image features placed unscaled at the image-token positions (§3.1, §4.5)")
        cut = 3 + n + 2
        part = forward(m, ids[:cut], [img])
        d = float(np.max(np.abs(part["logits"] - res["logits"][:cut])))
        ck.ok(d < 1e-8, f"causality with an image block (max diff {d:.1e})")
        # patch embedding == explicit convolution sum for a few patches (§4.2)
        vc = m.cfg["vision"]
        P, g = vc["patch_size"], vc["image_size"] // vc["patch_size"]
        pv = res["pixel_values"][0].astype(np.float64)
        pe = m.patch_embed(res["pixel_values"][0])
        Wc = m.w["vision.embeddings.patch_embedding.weight"].astype(np.float64)
        bc = m.w["vision.embeddings.patch_embedding.bias"].astype(np.float64)
        err = 0.0
        for (py, px) in [(0, 0), (0, g - 1), (g - 1, 1), (g // 2, g // 3)]:
            for o in range(0, vc["hidden_size"], max(1, vc["hidden_size"] // 7)):
                acc = bc[o]
                for c in range(vc["num_channels"]):
                    for ky in range(P):
                        for kx in range(P):
                            acc += Wc[o, c, ky, kx] * pv[c, P * py + ky, P * px + kx]
                err = max(err, abs(acc - pe[py * g + px, o]))
        ck.ok(err < 1e-9, f"patch embedding == explicit conv sum (max diff {err:.1e})")
        # average pool == explicit loop (§4.4): token j = R*tps + C averages patches of a kz x kz block
        vo = rng.standard_normal((1, g * g, vc["hidden_size"]))
        tps = int(round(n ** 0.5))
        kz = g // tps
        pooled = np.zeros((n, vc["hidden_size"]))
        for R in range(tps):
            for Cc in range(tps):
                pooled[R * tps + Cc] = np.mean([vo[0, (kz * R + a) * g + kz * Cc + b] for a in range(kz) for b in range(kz)], axis=0)
        wn = m.w["proj.mm_soft_emb_norm.weight"].astype(np.float64)
        nrm = pooled / np.sqrt(np.mean(pooled ** 2, -1, keepdims=True) + vc["layer_norm_eps"]) * (1 + wn)
        want = nrm @ m.w["proj.mm_input_projection_weight"].astype(np.float64)
        err = float(np.max(np.abs(m.projector(vo)[0] - want)))
        ck.ok(err < 1e-9, f"projector == explicit pool/RMS/matmul loop (max diff {err:.1e})")
        nb = m.text_forward(ids, image_embeds=res["image_embeds"], bidirectional_images=False)
        d2 = float(np.max(np.abs(nb["logits"][3:3 + n] - res["logits"][3:3 + n])))
        ck.ok(d2 > 0, f"bidirectional image block changes image-position outputs (diff {d2:.1e})")
    return m


def selftest(args):
    ck = _Checks()
    rng = np.random.default_rng(1234)
    # 1. resize vs PIL, byte for byte
    try:
        from PIL import Image
        have_pil = True
    except ImportError:
        have_pil = False
        print("skip resize-vs-PIL: Pillow not importable")
    if have_pil:
        cases = [((1, 1), (28, 28)), ((5, 3), (28, 28)), ((37, 53), (28, 28)), ((640, 480), (896, 896)),
                 ((333, 1001), (896, 896)), ((896, 896), (896, 896)), ((900, 896), (896, 896)),
                 ((896, 2000), (896, 896)), ((7, 300), (64, 64)), ((1280, 720), (224, 224)),
                 ((97, 89), (13, 211)), ((3000, 17), (896, 896)), ((224, 224), (896, 896)),
                 ((1792, 1792), (896, 896)), ((449, 449), (896, 896))]
        for _ in range(6):
            cases.append(((int(rng.integers(1, 1500)), int(rng.integers(1, 1500))),
                          (int(rng.integers(1, 1000)), int(rng.integers(1, 1000)))))
        for (w, h), (ow, oh) in cases:
            a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            if (w * h) % 2:  # some smooth images too (noise hides nothing, but gradients round differently)
                yy, xx = np.mgrid[0:h, 0:w]
                a = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                              ((xx + yy) * 7) % 256], -1).astype(np.uint8)
            ref = np.asarray(Image.fromarray(a, "RGB").resize((ow, oh), Image.BILINEAR))
            got = resize_bilinear_u8(a, ow, oh)
            nd = int(np.count_nonzero(ref != got))
            ck.ok(nd == 0 and got.shape == ref.shape, f"resize {w}x{h} -> {ow}x{oh} matches PIL byte for byte ({nd} differing)")
        # grey/RGBA through preprocess (convert('RGB') path) vs PIL-resized reference
        g = rng.integers(0, 256, size=(50, 70), dtype=np.uint8)
        with tempfile.TemporaryDirectory() as td:
            fp = os.path.join(td, "g.png")
            Image.fromarray(g, "L").save(fp)
            x = preprocess(fp, {"size": {"height": 28, "width": 28}})
            refu8 = np.asarray(Image.open(fp).convert("RGB").resize((28, 28), Image.BILINEAR))
            want = (((refu8.astype(np.float64) * (1 / 255)).astype(np.float32) - np.float32(0.5))
                    / np.float32(0.5)).transpose(2, 0, 1)
            ck.ok(np.array_equal(x, want), "preprocess(grey PNG) == HF rescale/normalize of PIL-resized RGB")
    # 2. rescale/normalize endpoints (§4.1 step 5)
    x = preprocess(np.array([[[0, 255, 128]]], np.uint8), {"do_resize": False})
    ck.ok(x[0, 0, 0] == -1.0 and x[1, 0, 0] == 1.0 and abs(x[2, 0, 0] - (128 / 127.5 - 1)) < 1e-6,
          "preprocess maps 0 -> -1, 255 -> 1, CHW layout")
    # 3. RoPE
    for mode in ("f32", "f64"):
        for params in ({"rope_type": "default", "rope_theta": 1e4}, {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}):
            inv = rope_inv_freq(256, params, mode)
            cos, sin = rope_cos_sin(np.array([0, 1, 5]), inv, mode)
            v = rng.standard_normal((3, 2, 256))
            r = apply_rope(v, cos, sin)
            ck.ok(np.array_equal(r[0], v[0]), f"RoPE({mode},{params['rope_type']}) at position 0 is the identity")
            ck.ok(np.allclose(np.linalg.norm(r, axis=-1), np.linalg.norm(v, axis=-1), rtol=1e-6),
                  f"RoPE({mode},{params['rope_type']}) preserves norms")
    inv = rope_inv_freq(256, {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}, "f64")
    ck.ok(abs(inv[0] - 1 / 8) < 1e-15 and abs(inv[1] - 1e6 ** (-2 / 256) / 8) < 1e-15, "linear RoPE: inv_freq/8")
    # relative-position property: <R(p)q, R(p')k> depends on p - p' only
    q = rng.standard_normal((1, 1, 16))
    k = rng.standard_normal((1, 1, 16))
    inv = rope_inv_freq(16, {"rope_type": "default", "rope_theta": 1e4}, "f64")
    def dot(pq, pk):
        cq, sq = rope_cos_sin(np.array([pq]), inv, "f64")
        ckk, sk = rope_cos_sin(np.array([pk]), inv, "f64")
        return float(np.sum(apply_rope(q, cq, sq) * apply_rope(k, ckk, sk)))
    ck.ok(abs(dot(7, 3) - dot(104, 100)) < 1e-9, "RoPE scores depend only on relative position")
    # 4. masks
    T, Wn = 12, 4
    mf = build_mask(T, "full_attention", Wn)
    ms = build_mask(T, "sliding_attention", Wn)
    ck.ok(np.array_equal(mf, np.tril(np.ones((T, T), bool))), "full mask == lower triangle incl. diagonal")
    ck.ok(all(ms[t].sum() == min(t + 1, Wn) for t in range(T)) and ms[9, 6] and not ms[9, 5],
          "sliding mask: last W keys incl. self (q=9,W=4: k=6 yes, k=5 no)")
    ids = np.array([2, 5, 300, 300, 300, 7, 300, 300, 8, 9, 10, 11])
    grp = image_group_ids(ids, 300)
    ck.ok(grp.tolist() == [-1, -1, 0, 0, 0, -1, 1, 1, -1, -1, -1, -1], "image groups = runs of image tokens")
    mi = build_mask(T, "full_attention", Wn, grp)
    ck.ok(mi[2, 4] and mi[3, 4] and not mi[4, 6] and not mi[1, 2] and mi[6, 4] and mi[6, 7] and not mi[5, 6],
          "image block: bidirectional within an image, causal across images/text")
    ms2 = build_mask(T, "sliding_attention", 2, grp)
    msw = build_mask(T, "sliding_attention", 2, grp, image_mask="window")
    ck.ok(ms2[2, 4] and not msw[2, 4] and msw[3, 4], "image mask 'or' ignores the window, 'window' respects |q-k|<W")
    # 5. tiny model: load in 4 layouts, consistency checks
    with tempfile.TemporaryDirectory() as td:
        dirs = {}
        for pre in ("old", "new"):
            for cf in ("old", "new"):
                dirs[(pre, cf)] = make_tiny(os.path.join(td, f"{pre}_{cf}"), pre, cf, seed=7)
        models = {k: load(v) for k, v in dirs.items()}
        m0 = models[("old", "old")]
        ck.ok(m0.cfg["layer_types"] == ["sliding_attention"] * 5 + ["full_attention", "sliding_attention"],
              "layer_types from sliding_window_pattern=6: layer 5 full")
        ck.ok(models[("new", "new")].cfg["rope"] == m0.cfg["rope"], "old and new config forms give the same RoPE parameters")
        ck.ok(m0.embed_scale() == 6.9375 and load(dirs[("old", "old")], embed_scale="f32").embed_scale() == float(np.float32(math.sqrt(48))),
              "embed scale: bf16(sqrt(48)) = 6.9375 for BF16 embeddings (§3.1), f32 sqrt on request")
        tc = m0.cfg["text"]
        itok = m0.cfg["top"]["image_token_index"]
        T = 21
        ids = np.array([2, 105, 10, 290] + [itok] * 4 + [291, 108] + list(rng.integers(3, 280, T - 10)))
        img = rng.integers(0, 256, size=(40, 33, 3), dtype=np.uint8)
        outs = {k: forward(m, ids, [img]) for k, m in models.items()}
        base = outs[("old", "old")]
        same = all(np.array_equal(base["logits"], o["logits"]) for o in outs.values())
        ck.ok(same, "identical logits from old/new prefixes and old/new config forms")
        ck.ok(base["image_embeds"].shape == (1, 4, tc["hidden_size"]) and base["vision_out"].shape == (1, 16, 32),
              "vision shapes: 16 patches -> 4 image tokens")
        ck.ok(np.array_equal(base["embeds"][4:8], base["image_embeds"][0]), "image features placed unscaled at image-token positions")
        # causality: prefix forward == prefix rows of the full forward (text-only, and with image
        # when the cut is outside the image block)
        txt = np.array([2] + list(rng.integers(3, 280, 19)))
        full = m0.text_forward(txt)
        worst = 0.0
        for t in (1, 5, 8, 9, 13, 20):
            part = m0.text_forward(txt[:t])
            worst = max(worst, float(np.max(np.abs(part["logits"] - full["logits"][:t]))))
        ck.ok(worst < 1e-9, f"causality: logits of prefix forward == full forward rows (max diff {worst:.2e})")
        part = forward(m0, ids[:12], [img])
        ck.ok(np.max(np.abs(part["logits"] - base["logits"][:12])) < 1e-9, "causality with an image block")
        nb = m0.text_forward(ids, bidirectional_images=False)
        nb6 = m0.text_forward(ids[:6], bidirectional_images=False)
        ck.ok(np.max(np.abs(nb6["logits"] - nb["logits"][:6])) < 1e-9, "causal-only image mode is causal")
        # slow loop attention vs vectorised, layer 0 (sliding) and layer 5 (full)
        tr = m0.text_forward(txt[:14], trace=True)
        for L in (0, 5):
            x_in = tr["embeds"] if L == 0 else tr[f"resid_post.{L - 1}"]
            slow = _slow_attention_layer(m0, L, x_in, m0.cfg["layer_types"][L], np.arange(14))
            err = float(np.max(np.abs(slow - tr[f"attn_out.{L}"])))
            ck.ok(err < 1e-9, f"layer {L} ({m0.cfg['layer_types'][L]}) attention == per-head loop derivation ({err:.1e})")
        # f32 math vs f64 math agree loosely
        m32 = load(dirs[("old", "old")], f32=True)
        o32 = m32.text_forward(txt)
        rel = float(np.max(np.abs(o32["logits"] - full["logits"])) / np.max(np.abs(full["logits"])))
        ck.ok(rel < 1e-4, f"f32-math forward close to f64-math forward (rel {rel:.1e})")
        check_model(dirs[("new", "new")], ck)
        # RMSNorm with zero weight -> unit RMS
        xx = rng.standard_normal((3, 64))
        yy = rms_norm_1pw(xx, np.zeros(64, np.float32), 1e-6, np.float64)
        ck.ok(np.allclose(np.sqrt(np.mean(yy * yy, -1)), 1, atol=1e-6), "RMS(x; 0) has unit RMS")
        # st_numpy round trip incl. bf16
        a = rng.standard_normal((3, 5)).astype(np.float32)
        fp = os.path.join(td, "rt.safetensors")
        save_file({"a": a, "b": a, "i": np.arange(4, dtype=np.int64), "u": np.arange(3, dtype=np.uint8)}, fp, {"b": "BF16"})
        st = SafeTensorsDir(fp)
        ck.ok(np.array_equal(st.get("a"), a) and np.array_equal(st.get("b", widen=True), round_to_bf16(a))
              and st.get("i").tolist() == [0, 1, 2, 3] and st.dtype("b") == "BF16", "safetensors round trip (F32/BF16/I64/U8)")
        ck.ok(float(bf16_to_f32(np.array([0x4250], np.uint16))[0]) == 52.0 and float(round_to_bf16(np.float32(math.sqrt(2560)))) == 50.5,
              "bf16 decode and bf16(sqrt(2560)) == 50.5 (§3.1)")
    print(f"{ck.n - ck.fail}/{ck.n} checks passed")
    return 1 if ck.fail else 0


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------

def _parse_ids(s):
    return [int(t) for t in s.replace(",", " ").split()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forward", help="run the reference forward, write every tensor to .npz")
    f.add_argument("--model", required=True)
    g = f.add_mutually_exclusive_group(required=True)
    g.add_argument("--ids", help='token ids, e.g. "2 105 2364"')
    g.add_argument("--ids-file", help="file with whitespace/comma separated ids")
    f.add_argument("--image", action="append", default=[], help="image file (repeat for several, in order)")
    f.add_argument("--out", required=True)
    f.add_argument("--f32", action="store_true", help="float32 arithmetic (default float64)")
    f.add_argument("--rope", choices=["f32", "f64"], default="f32", help="RoPE angle precision (default: as HF, f32)")
    f.add_argument("--embed-scale", choices=["stored", "f32", "exact"], default="stored")
    f.add_argument("--image-mask", choices=["or", "window", "causal"], default="or",
                   help="or: same-image block OR-ed on all layers (spec §3.3, default); window: AND |q-k|<W on "
                        "sliding layers (HF PR #46850 / JAX); causal: no bidirectional image block")
    f.add_argument("--final-softcap", choices=["auto", "on", "off"], default="auto")
    f.add_argument("--no-exif", action="store_true", help="do not apply EXIF orientation when loading images")
    f.add_argument("--trace", action="store_true", help="also write attn_out.L / mlp_out.L (branch outputs before post-norms)")
    f.add_argument("--lazy", action="store_true", help="do not cache widened weights (large models)")
    p = sub.add_parser("preprocess", help="write pixel_values of an image")
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--no-exif", action="store_true")
    sub.add_parser("selftest", help="internal consistency checks")
    c = sub.add_parser("check", help="model-level invariants on a checkpoint folder")
    c.add_argument("model_dirs", nargs="+")
    t = sub.add_parser("make-tiny", help="write a tiny random checkpoint")
    t.add_argument("out_dir")
    t.add_argument("--prefix", choices=["old", "new"], default="old")
    t.add_argument("--config", choices=["old", "new"], default="old")
    t.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "selftest":
        return selftest(a)
    if a.cmd == "check":
        ck = _Checks()
        for md in a.model_dirs:
            check_model(md, ck)
        print(f"{ck.n - ck.fail}/{ck.n} checks passed")
        return 1 if ck.fail else 0
    if a.cmd == "make-tiny":
        make_tiny(a.out_dir, a.prefix, a.config, a.seed)
        print(a.out_dir)
        return 0
    if a.cmd == "preprocess":
        cfg = load_config(a.model)
        pv = preprocess(a.image, cfg["preproc"], exif=not a.no_exif)
        np.savez(a.out, pixel_values=pv[None])
        return 0
    ids = _parse_ids(a.ids if a.ids is not None else open(a.ids_file).read())
    m = load(a.model, f32=a.f32, lazy=a.lazy, rope_mode=a.rope, embed_scale=a.embed_scale,
             image_mask=("or" if a.image_mask == "causal" else a.image_mask), final_softcap=a.final_softcap)
    images = [load_image_rgb(pth, exif=not a.no_exif) for pth in a.image]
    res = forward(m, ids, images, bidirectional_images=(a.image_mask != "causal"), trace=a.trace)
    np.savez(a.out, **_to_f32(res))
    lg = res["logits"]
    print(f"T={len(ids)} layers={m.cfg['text']['num_hidden_layers']} logits {lg.shape} "
          f"argmax(last)={int(np.argmax(lg[-1]))} embed_scale={m.embed_scale()} -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
