#!/usr/bin/python3
"""Writes the seed corpus of fuzz_pytorch_bin (fuzz/corpus/pytorch_bin/): small files written by
torch.save itself (Debian's python3-torch; the files in the repository came from 1.13.1) and
broken variants of them. Needs torch only to regenerate the seeds; nothing at test time does.

  /usr/bin/python3 fuzz/make_pytorch_bin_corpus.py fuzz/corpus/pytorch_bin

Names carry the expectation the replay test checks: ok-* must be accepted, bad-* rejected.
*.bin are zip archives (whole-file path), *.pkl bare pickles (unpickler only). Nothing here is
ever unpickled: the malicious pickles are only written (pickle.dumps does not call __reduce__'s
function).
"""
import collections
import io
import os
import pickle
import sys
import zipfile

import torch


def saved(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def entries(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def rezip(items, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in items:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


def replace_entry(data, suffix, new):
    return rezip([(n, new(d) if n.endswith(suffix) else d) for n, d in entries(data)])


class Call:
    """Pickles as a call of `fn(*args)`; only ever dumped, never loaded."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class Rebuild:
    """Pickles as a call of the torch._utils function `name` with `args`, as PyTorch 2.x writes
    _rebuild_tensor_v3 (1.13 lacks it: a stand-in of that name is registered while dumping)."""

    def __init__(self, name, args):
        self.name, self.args = name, args

    def __reduce__(self):
        return (getattr(torch._utils, self.name), self.args)


def stand_in(module, name):
    """Registers module.name (for pickling by name only; calling it fails)."""
    def fn(*args):
        raise RuntimeError(f"{module}.{name} is a stand-in for pickling")
    fn.__module__, fn.__name__, fn.__qualname__ = module.__name__, name, name
    if not hasattr(module, name):
        setattr(module, name, fn)
    return getattr(module, name)


def main(out):
    os.makedirs(out, exist_ok=True)
    files = {}
    base = torch.arange(6, dtype=torch.float32).view(2, 3)
    small = collections.OrderedDict(w=base)
    files["ok-float.bin"] = saved(small)
    shared = torch.arange(12, dtype=torch.float32).view(3, 4)
    tied = collections.OrderedDict()
    for name in ["shared.weight", "encoder.embed_tokens.weight", "lm_head.weight"]:
        tied[name] = shared
    tied["transposed"] = shared.t()
    tied["row"] = shared[1]
    tied["column"] = shared[:, 2]
    files["ok-tied-views.bin"] = saved(tied)
    dtypes = collections.OrderedDict()
    for dt in [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
               torch.int16, torch.int8, torch.uint8, torch.bool]:
        dtypes[str(dt)] = (torch.arange(4) % 2).to(dt)
    files["ok-dtypes.bin"] = saved(dtypes)
    files["ok-empty-dict.bin"] = saved(collections.OrderedDict())
    files["ok-module-state-dict.bin"] = saved(torch.nn.Linear(3, 2).state_dict())  # _metadata
    files["ok-protocol4.bin"] = saved(small, pickle_protocol=4)
    files["ok-plain-dict.bin"] = saved({"a": base, "b": base[1]})
    files["ok-empty-tensor.bin"] = saved({"e": torch.zeros(0, 3)})
    files["ok-state-dict.pkl"] = dict(entries(files["ok-tied-views.bin"]))["archive/data.pkl"]
    files["ok-stored-rezipped.bin"] = rezip(entries(files["ok-float.bin"]))

    # nn.Parameter values pickle as torch._utils._rebuild_parameter(data, requires_grad, hooks).
    params = collections.OrderedDict()
    params["weight"] = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).view(2, 3))
    params["bias"] = torch.nn.Parameter(torch.tensor([0.5, -1.5]), requires_grad=False)
    params["tied"] = params["weight"]
    files["ok-parameters.bin"] = saved(params)
    torch.manual_seed(0)
    files["ok-module-keep-vars.bin"] = saved(torch.nn.Linear(3, 2).state_dict(keep_vars=True))
    # PyTorch 2.x's _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype)
    # over an UntypedStorage (persistent id count in bytes).
    stand_in(torch._utils, "_rebuild_tensor_v3")
    half = torch.arange(6, dtype=torch.float16).view(2, 3)
    raw = half.storage().untyped()
    hooks = collections.OrderedDict
    v3 = collections.OrderedDict()
    v3["h"] = Rebuild("_rebuild_tensor_v3", (raw, 0, (2, 3), (3, 1), False, hooks(), torch.float16))
    v3["row"] = Rebuild("_rebuild_tensor_v3", (raw, 3, (3,), (1,), False, hooks(), torch.float16))
    v3["p"] = Rebuild("_rebuild_parameter", (Rebuild("_rebuild_tensor_v3", (
        raw, 1, (2,), (3,), True, hooks(), torch.float16)), True, hooks()))
    files["ok-rebuild-v3.bin"] = saved(v3)
    longs = torch.tensor([7, -8], dtype=torch.int64).storage().untyped()
    files["ok-rebuild-v3-int64-metadata.bin"] = saved(collections.OrderedDict(
        n=Rebuild("_rebuild_tensor_v3", (longs, 0, (2,), (1,), False, hooks(), torch.int64, {}))))

    with_hook = hooks()
    with_hook[0] = "hook"
    files["bad-parameter-hooks.bin"] = saved(collections.OrderedDict(
        w=Rebuild("_rebuild_parameter", (half, False, with_hook))))
    files["bad-parameter-of-int.bin"] = saved(collections.OrderedDict(
        w=Rebuild("_rebuild_parameter", (3, False, hooks()))))
    stand_in(torch, "uint16")  # a dtype torch 2.x pickles with _rebuild_tensor_v3
    files["bad-rebuild-v3-uint16.bin"] = saved(collections.OrderedDict(
        u=Rebuild("_rebuild_tensor_v3", (raw, 0, (6,), (1,), False, hooks(), torch.uint16))))
    files["bad-rebuild-v3-two-dtypes.bin"] = saved(collections.OrderedDict(
        a=Rebuild("_rebuild_tensor_v3", (raw, 0, (6,), (1,), False, hooks(), torch.float16)),
        b=Rebuild("_rebuild_tensor_v3", (raw, 0, (3,), (1,), False, hooks(), torch.float32))))
    files["bad-rebuild-v3-odd-bytes.bin"] = saved(collections.OrderedDict(
        a=Rebuild("_rebuild_tensor_v3", (raw, 0, (1,), (1,), False, hooks(), torch.float64))))
    files["bad-rebuild-v3-past-end.bin"] = saved(collections.OrderedDict(
        a=Rebuild("_rebuild_tensor_v3", (raw, 4, (3,), (1,), False, hooks(), torch.float16))))

    evil = pickle.dumps(Call(os.system, ("echo pwned",)), protocol=2)
    files["bad-os-system.pkl"] = evil
    files["bad-builtins-eval.pkl"] = pickle.dumps(Call(eval, ("1+1",)), protocol=4)
    files["bad-os-system-in-zip.bin"] = replace_entry(files["ok-float.bin"], "data.pkl",
                                                      lambda d: evil)
    files["bad-legacy-format.pt"] = saved(small, _use_new_zipfile_serialization=False)
    files["bad-compressed.bin"] = rezip(entries(files["ok-float.bin"]), zipfile.ZIP_DEFLATED)
    data = files["ok-float.bin"]
    files["bad-truncated.bin"] = data[: len(data) // 2]
    files["bad-truncated-end.bin"] = data[:-1]
    crc = bytearray(data)
    start = data.index(bytes(4 * [0]) + b"\x00\x00\x80\x3f")  # 0.0, 1.0 of the storage
    crc[start + 4] ^= 1
    files["bad-crc.bin"] = bytes(crc)
    files["bad-storage-too-short.bin"] = replace_entry(data, "data/0", lambda d: d[:-4])
    files["bad-storage-missing.bin"] = rezip([e for e in entries(data) if not e[0].endswith("/0")])
    files["bad-big-endian.bin"] = rezip(entries(data) + [("archive/byteorder", b"big")])
    # The view's offset (BININT1 0 right after BINPERSID) moved past the storage's end.
    files["bad-view-past-end.bin"] = replace_entry(
        data, "data.pkl", lambda d: d.replace(b"QK\x00", b"QK\x05", 1))
    files["bad-not-a-dict.pkl"] = pickle.dumps([1, 2, 3], protocol=2)
    files["bad-not-a-checkpoint.bin"] = b"PK\x03\x04 and then nothing"
    for name, content in sorted(files.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(content)
        print(f"{len(content):7d}  {name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/pytorch_bin")
