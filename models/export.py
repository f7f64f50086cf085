#!/usr/bin/python3
"""Writes a trained checkpoint as a Stemsphere model file (format: docs/models.md), and the
parity fixtures the C++ tests compare against.

  /usr/bin/python3 models/export.py --checkpoint runs/live/checkpoint.pt --out models/weights/live.stsnn
  /usr/bin/python3 models/export.py --fixtures models/fixtures
The fixture mode writes a tiny random-weight model (tiny.stsnn) with its expected masks on a
deterministic input (tiny_expected.f32), and expected masks of the shipped models
(live_expected.f32, studio_expected.f32, render_expected.f32) on the same kind of input.
"""
import argparse
import os
import struct
import sys
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stemsphere_model as sm  # noqa: E402

MAGIC = b"STSPHNN\0"
FORMAT_VERSION = 2
FLAG_GUIDED = 1
# The file's variant says which quality mode a model is for (training variants are named after
# it: "live-guided-b1" is a Live model); guidance is a header flag.
VARIANT_IDS = {"live": 0, "studio": 1, "test": 2, "render": 3}


def variant_id(variant):
    return VARIANT_IDS[variant.split("-")[0]]


def tensor_list(model):
    """Name and tensor in file order; convolution weights stay (out, in, kernel) row-major."""
    sd = model.state_dict()
    names = ["feat_mean", "feat_std", "inp.weight", "inp.bias"]
    for i in range(len(model.dilations)):
        names += [f"convs.{i}.weight", f"convs.{i}.bias", f"mixes.{i}.weight", f"mixes.{i}.bias"]
    names += ["out.weight", "out.bias"]
    return [(n, sd[n].detach().float().cpu().contiguous()) for n in names]


def write_model(model, variant, path):
    head = MAGIC + struct.pack("<8I", FORMAT_VERSION, variant_id(variant), model.bands,
                               model.channels, model.kernel, len(model.dilations),
                               model.lookahead, FLAG_GUIDED if model.guided else 0)
    head += struct.pack("<3f", sm.FMAX_HZ, sm.POWER_FLOOR, model.bound if model.guided else 0.0)
    head += struct.pack(f"<{len(model.dilations)}I", *model.dilations)
    tensors = tensor_list(model)
    body = struct.pack("<I", len(tensors))
    for name, t in tensors:
        raw = name.encode()
        body += struct.pack("<I", len(raw)) + raw + struct.pack("<I", t.numel())
        body += t.numpy().astype("<f4").tobytes()
    data = head + body
    data += struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def lcg_spectra(frames, bins, seed):
    """The fixture input, bit-exact in C++ (tests/engine/test_neural_estimator.cpp): a 32-bit LCG
    gives 24-bit uniforms (exact in float32), scaled by powers of two per frame."""
    state = seed & 0xFFFFFFFF
    out = np.zeros((2, frames, bins), np.complex64)
    for t in range(frames):
        scale = np.float32(2.0 ** ((t % 7) - 3) * 64.0)
        for c in range(2):
            vals = np.empty(2 * bins, np.float32)
            for i in range(2 * bins):
                state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
                vals[i] = np.float32(((state >> 8) & 0xFFFFFF) / 16777216.0) - np.float32(0.5)
            out[c, t] = (vals[0::2] * scale) + 1j * (vals[1::2] * scale)
    return out


def expected_masks(model, n_fft, rate, frames, seed, bridge=None, skip=0):
    """Masks the C++ estimator must return for each of `frames` calls on the fixture input,
    without the first `skip` calls. A guided model's first `lookahead` outputs combine with an
    even split, as the C++ ring starts."""
    spec = torch.from_numpy(lcg_spectra(frames, n_fft // 2 + 1, seed))
    w = sm.band_geometry(sm.band_weights(n_fft, rate, model.bands))
    with torch.no_grad():
        dsp = bridge.masks(spec.unsqueeze(0), n_fft, n_fft // 4, rate) if model.guided else None
        feats = sm.network_inputs(model, spec[0:1], spec[1:2], w, n_fft, dsp)
        out = model(feats)
        if model.guided:
            d = model.lookahead
            even = torch.full_like(dsp[:, :d], 0.25)
            masks = sm.guided_masks(out, torch.cat([even, dsp[:, :frames - d]], dim=1), w)[0]
        else:
            masks = sm.bin_masks(out, w)[0]  # (frames, 4, bins)
    return masks[skip:].numpy().astype("<f4")


def load_checkpoint(path):
    ck = torch.load(path, map_location="cpu")
    model = sm.MaskNet(**ck["config"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck["variant"], ck


def main():
    ap = argparse.ArgumentParser(description="export Stemsphere model files and fixtures")
    ap.add_argument("--checkpoint")
    ap.add_argument("--out")
    ap.add_argument("--fixtures", help="directory for the C++ parity fixtures")
    ap.add_argument("--weights", default=os.path.join(os.path.dirname(__file__), "weights"))
    ap.add_argument("--dsp-bridge", default=sm.DEFAULT_DSP_BRIDGE,
                    help="engine DSP masks for guided fixtures")
    args = ap.parse_args()
    if args.checkpoint:
        model, variant, ck = load_checkpoint(args.checkpoint)
        size = write_model(model, variant, args.out)
        print(f"{args.out}: {variant}, step {ck['step']}, {size} bytes")
    if args.fixtures:
        os.makedirs(args.fixtures, exist_ok=True)
        torch.manual_seed(1234)
        tiny = sm.MaskNet(bands=12, channels=8, dilations=(1, 2, 4), kernel=3, lookahead=2)
        with torch.no_grad():  # non-trivial normalisation so the test exercises it
            tiny.feat_mean.uniform_(-3, 3)
            tiny.feat_std.uniform_(0.5, 2)
            for p in tiny.parameters():
                p.mul_(3.0)
        write_model(tiny.eval(), "test", os.path.join(args.fixtures, "tiny.stsnn"))
        expected_masks(tiny, 128, 44100.0, 48, 7).tofile(
            os.path.join(args.fixtures, "tiny_expected.f32"))
        bridge = sm.DspBridge(args.dsp_bridge)
        # A guided one: random (not zero) corrections so the test exercises every path.
        tiny_guided = sm.MaskNet(bands=12, channels=8, dilations=(1, 2, 4), kernel=3,
                                 lookahead=2, guided=True, bound=1.5)
        with torch.no_grad():
            tiny_guided.feat_mean.uniform_(-1, 1)
            tiny_guided.feat_std.uniform_(0.5, 2)
            for p in tiny_guided.parameters():
                p.uniform_(-0.6, 0.6)
        write_model(tiny_guided.eval(), "test", os.path.join(args.fixtures, "tiny_guided.stsnn"))
        expected_masks(tiny_guided, 128, 44100.0, 48, 7, bridge).tofile(
            os.path.join(args.fixtures, "tiny_guided_expected.f32"))
        for variant in ("live", "studio", "render"):
            path = os.path.join(args.weights, f"{variant}.stsnn")
            if not os.path.exists(path):
                continue
            model = read_model(path)
            # The shipped models at the engine's real size, 12 frames kept to keep the fixture
            # small. Render's look-ahead (255 frames) would leave all 12 in the even-split
            # start, so its 12 are the ones after the look-ahead has filled.
            skip = model.lookahead if variant == "render" else 0
            expected_masks(model, 1024, 44100.0, 12 + skip, 11, bridge, skip).tofile(
                os.path.join(args.fixtures, f"{variant}_expected.f32"))
        print(f"fixtures written to {args.fixtures}")


def read_model(path):
    """Parses a model file back into a MaskNet (round-trip check of the exporter)."""
    data = open(path, "rb").read()
    assert data[:8] == MAGIC
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4]) & 0xFFFFFFFF
    version, _variant, bands, channels, kernel, layers, lookahead = struct.unpack(
        "<7I", data[8:36])
    assert version in (1, FORMAT_VERSION)
    flags = struct.unpack("<I", data[36:40])[0] if version >= 2 else 0
    bound = struct.unpack("<f", data[48:52])[0] if version >= 2 else 0.0
    pos = 44 if version == 1 else 52  # after fmax_hz, the power floor (and the bound)
    dilations = struct.unpack(f"<{layers}I", data[pos:pos + 4 * layers])
    pos += 4 * layers
    model = sm.MaskNet(bands=bands, channels=channels, dilations=dilations, kernel=kernel,
                       lookahead=lookahead, guided=bool(flags & FLAG_GUIDED), bound=bound)
    sd = model.state_dict()
    (count,) = struct.unpack("<I", data[pos:pos + 4])
    pos += 4
    for _ in range(count):
        (n,) = struct.unpack("<I", data[pos:pos + 4])
        name = data[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        (numel,) = struct.unpack("<I", data[pos:pos + 4])
        pos += 4
        vals = np.frombuffer(data[pos:pos + 4 * numel], "<f4").copy()
        pos += 4 * numel
        sd[name] = torch.from_numpy(vals).view(sd[name].shape)
    model.load_state_dict(sd)
    return model.eval()


if __name__ == "__main__":
    main()
