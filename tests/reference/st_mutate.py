#!/usr/bin/env python3
"""st_mutate.py DIR drop NAME | DIR set|add NAME d0,d1,..

Edits a Hugging Face checkpoint folder in place for bad-input tests: drops a
tensor, or stores an all-zero BF16 tensor of the given shape under NAME
(replacing it, or adding it to the last shard). Rewrites the shard and
model.safetensors.index.json. Uses the numpy-only st_numpy.py beside it."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_numpy import SafeTensorsFile, save_file  # noqa: E402


def main(d, op, name, shape=None):
    ip = os.path.join(d, 'model.safetensors.index.json')
    idx = json.load(open(ip))
    wm = idx['weight_map']
    shard = wm.get(name) or sorted(set(wm.values()))[-1]
    p = os.path.join(d, shard)
    f = SafeTensorsFile(p)
    t = {k: f.get(k, widen=True) for k in f.keys()}
    dt = {k: f.dtype(k) for k in f.keys()}
    if op == 'drop':
        del t[name]
        del wm[name]
    else:
        t[name] = np.zeros([int(x) for x in shape.split(',')], np.float32)
        dt[name] = 'BF16'
        wm[name] = shard
    save_file(t, p + '.new', dtypes=dt, metadata={'format': 'pt'})
    os.replace(p + '.new', p)
    json.dump(idx, open(ip + '.new', 'w'))
    os.replace(ip + '.new', ip)


if __name__ == '__main__':
    main(*sys.argv[1:])
