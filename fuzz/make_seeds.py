#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/ (small, valid inputs of every parser plus a few
near-misses). Run from the repository root: python3 fuzz/make_seeds.py. Standard library only."""
import gzip, json, os, shutil, struct, random

R = random.Random(0)
ROOT = "fuzz/corpus"


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, meta=None):
    """tensors: [(name, dtype, shape, raw bytes)]"""
    header, off, blob = {}, 0, b""
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(n, lo=-1, hi=1):
    return struct.pack("<%df" % n, *[R.uniform(lo, hi) for _ in range(n)])


# --- safetensors
put("safetensors", "f32_meta", safetensors([("a", "F32", [2, 3], f32(6)), ("b", "F32", [3], f32(3))], {"format": "pt", "k": "v"}))
put("safetensors", "dtypes", safetensors([("h", "F16", [4], struct.pack("<4H", 0x3C00, 0xC000, 0x7C00, 0x0001)),
                                          ("bf", "BF16", [2], struct.pack("<2H", 0x3F80, 0x7FC0)),
                                          ("i8", "I8", [3], bytes([1, 255, 128])), ("u8", "U8", [2], bytes([0, 9])),
                                          ("i32", "I32", [1], struct.pack("<i", -7)), ("i64", "I64", [1], struct.pack("<q", 5)),
                                          ("f64", "F64", [1], struct.pack("<d", 1.5)), ("e", "F32", [0, 4], b"")]))
put("safetensors", "scalar", safetensors([("s", "F32", [], f32(1))]))
shutil.copy("tests/fixtures/core/torch_written.safetensors", os.path.join(ROOT, "safetensors", "torch_written"))

# --- run configs (relative paths into the harness's working folder) and sweeps
base = ("name: run\nseed: 3\nmodel:\n  checkpoint: vit.safetensors\n  desc: '{\"heads\": 2}'\ndata:\n  format: tensor\n"
        "  root: ${QTK_FUZZ_DATA}\n  test: data\n  on_bad_image: fail\ncalibration:\n  images: 200\n  batch: 50\n"
        "quantization:\n  w_bits: 3\n  a_bits: 8\n  bias_corr: true\n  off: ['blocks.*.attn.softmax']\n"
        "search:\n  method: evolq\n  passes: 2\n  group: 100\n  eps: 0.01\n  targets: [qkv, fc1]\n  select_on: val\n"
        "output:\n  dir: out/${QTK_FUZZ_MISSING:-default}\n")
put("config", "full", base)
put("config", "full_sets", base + "\n%%\nquantization.w_bits=4\nsearch.temperature=2.5\nname=x\ndevice=cpu\n")
put("config", "minimal", "name: m\nmodel:\n  checkpoint: vit.safetensors\ndata:\n  format: fashion-mnist\n  root: data\n")
put("config", "bad_int", "name: m\nmodel:\n  checkpoint: vit.safetensors\ndata:\n  format: tensor\n  root: data\nquantization:\n  w_bits: 4.5\n")
put("config", "cuda", "name: g\ndevice: cuda\ngpus: all\ngpu_gemm: int8\nmodel:\n  checkpoint: vit.safetensors\n"
    "data:\n  format: folder\n  root: data\nsearch:\n  ranks: 2\n  transport: nccl\n")
for f in sorted(os.listdir("experiments/configs")):
    if f.endswith(".yaml"):
        put("config", "shipped_" + f[:-5], open(os.path.join("experiments/configs", f)).read())
put("sweep", "grid", "name: s\nbase: @BASE@\nout: sweeps/s\nretries: 1\nparallel: 2\ngrid:\n  - key: quantization.w_bits\n"
    "    values: ['3', '4']\n  - key: seed\n    values: ['0', '1', '2']\nset: ['search.passes=1']\n"
    "slurm:\n  partition: gpu\n  gpus: 1\n  cpus: 8\n  time: '01:00:00'\n  sbatch: ['--qos=low']\n  setup: ['module load cuda']\n")
put("sweep", "dup", "name: s\nbase: @BASE@\nout: o\ngrid:\n  - key: seed\n    values: ['1', '1']\n")
put("sweep", "empty", "# only a comment\n")

# --- Mamba checkpoints: config.json %% index %% shard a %% shard b
def mamba_tensors(D=4, L=1, V=8, N=2, E=8, R=1, K=2, m2=False, H=2):
    t = [("backbone.embeddings.weight", [V, D]), ("backbone.norm_f.weight", [D])]
    for l in range(L):
        p = "backbone.layers.%d." % l
        IN = 2 * E if not m2 else 2 * E + 2 * N + H
        CD = E if not m2 else E + 2 * N
        t += [(p + "norm.weight", [D]), (p + "mixer.in_proj.weight", [IN, D]), (p + "mixer.conv1d.weight", [CD, 1, K]),
              (p + "mixer.conv1d.bias", [CD]), (p + "mixer.out_proj.weight", [D, E])]
        if not m2:
            t += [(p + "mixer.x_proj.weight", [R + 2 * N, E]), (p + "mixer.dt_proj.weight", [E, R]),
                  (p + "mixer.dt_proj.bias", [E]), (p + "mixer.A_log", [E, N]), (p + "mixer.D", [E])]
        else:
            t += [(p + "mixer.dt_bias", [H]), (p + "mixer.A_log", [H]), (p + "mixer.D", [H]), (p + "mixer.norm.weight", [E])]
    return [(n, "F32", s, f32(max(1, __import__("math").prod(s)))) for n, s in t]

m1cfg = json.dumps({"model_type": "mamba", "hidden_size": 4, "num_hidden_layers": 1, "vocab_size": 8, "state_size": 2,
                    "expand": 2, "conv_kernel": 2, "time_step_rank": 1})
m1 = mamba_tensors()
put("mamba", "m1_single", m1cfg + "\n%%\n\n%%\n" + "")
with open(os.path.join(ROOT, "mamba", "m1_single"), "ab") as f:
    f.write(safetensors(m1))
idx = json.dumps({"metadata": {}, "weight_map": {n: ("a.safetensors" if i % 2 else "b.safetensors") for i, (n, *_r) in enumerate(m1)}})
put("mamba", "m1_sharded", (m1cfg + "\n%%\n" + idx + "\n%%\n").encode() + safetensors([t for i, t in enumerate(m1) if i % 2])
    + b"\n%%\n" + safetensors([t for i, t in enumerate(m1) if not i % 2]))
m2cfg = json.dumps({"model_type": "mamba2", "hidden_size": 4, "num_hidden_layers": 1, "vocab_size": 8, "state_size": 2,
                    "expand": 2, "conv_kernel": 2, "head_dim": 4, "num_heads": 2, "n_groups": 1, "chunk_size": 4,
                    "time_step_limit": [0.0, {"__float__": "Infinity"}], "layer_norm_epsilon": 1e-5})
put("mamba", "m2_single", (m2cfg + "\n%%\n\n%%\n").encode() + safetensors(mamba_tensors(m2=True)))
put("mamba", "mamba_ssm_cfg", json.dumps({"d_model": 4, "n_layer": 1, "vocab_size": 7, "pad_vocab_size_multiple": 8,
                                          "ssm_cfg": {"layer": "Mamba2", "d_state": 2, "headdim": 4, "ngroups": 1}}) + "\n%%\n\n%%\n")
put("mamba", "infinity_token", '{"model_type": "mamba2", "hidden_size": 4, "num_hidden_layers": 1, "vocab_size": 8, '
    '"time_step_limit": [0.0, Infinity], "head_dim": 4}')
put("mamba", "shipped_tiny1", open("models/tiny_mamba1/config.json").read())
put("mamba", "shipped_tiny2", open("models/tiny_mamba2/config.json").read())

# --- IDX and CIFAR
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data
put("idx", "images", idx([3, 4, 4], bytes(R.randrange(256) for _ in range(48))))
put("idx", "labels", idx([5], bytes([0, 1, 2, 9, 4])))
put("idx", "images_gz", gzip.compress(idx([2, 3, 3], bytes(range(18))), mtime=0))
put("idx", "cifar10", bytes([3]) + bytes(R.randrange(256) for _ in range(3072)))
put("idx", "cifar100", bytes([1, 42]) + bytes(R.randrange(256) for _ in range(3072)))

# --- token files: sidecar %% ids
put("tokens", "u16", json.dumps({"dtype": "uint16", "count": 40, "vocab_size": 300}) + "\n%%\n")
with open(os.path.join(ROOT, "tokens", "u16"), "ab") as f:
    f.write(struct.pack("<40H", *[R.randrange(300) for _ in range(40)]))
put("tokens", "u32", (json.dumps({"dtype": "uint32", "count": 20, "vocab_size": 70000}) + "\n%%\n").encode()
    + struct.pack("<20I", *[R.randrange(70000) for _ in range(20)]))
put("tokens", "oov", (json.dumps({"dtype": "uint16", "count": 2, "vocab_size": 3}) + "\n%%\n").encode() + struct.pack("<2H", 1, 5))

# --- JPEGs: the small test fixtures
os.makedirs(os.path.join(ROOT, "jpeg"), exist_ok=True)
for f in ["rgb_61x47.jpg", "cmyk_120x90.jpg", "gray_300x200.jpg"]:
    shutil.copy(os.path.join("tests/fixtures/datasets", f), os.path.join(ROOT, "jpeg", f[:-4]))

# --- class index %% val list
put("lists", "csv", "cat\ndog\n\n%%\nImageId,PredictionString\nimg1,cat 1 2 3\nimg2.jpg,dog\na/b,cat\n")
put("lists", "spaces", "  cat\ndog\r\n%%\nimg1.JPEG dog\nimg2.jpg\tcat\n")
put("lists", "dup_class", "cat\ncat\n%%\nimg1 cat\n")
