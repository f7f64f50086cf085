#!/usr/bin/python3
"""Trains the Live or Studio mask network on generated songs (models/data/generate.py).

One command, one seed, resumable (the checkpoint holds model, optimiser, step and RNG states):
  nice -n 19 /usr/bin/python3 models/train.py --data DIR --variant live --run runs/live \
      --seed 1 --steps 6000 [--minutes 30]
Re-running the same command continues from runs/live/checkpoint.pt. --minutes stops (after a
checkpoint) when the wall-clock budget is spent, so long runs go in chunks. Uses CUDA when present.

Batches: half coherent (one song, all stems aligned), half incoherent remixes (each stem from a
random song and offset); per-stem gains +-6 dB, 7 % whole-stem silence, random global gain and
L/R swap; optional per-stem EQ and kick shelf (--eq-db, --kick-db), soft clipping of vocal and
other stems (--drive) and a mix-bus compressor applied as one gain curve to every stem
(--bus-comp). --init starts a new run (fresh optimiser) from another run's weights; --fft trains
at another analysis window (same hop). Loss: L1 between masked mixture magnitudes and the true
stem magnitudes (both channels, all four stems), with the Studio target delayed by the
look-ahead.

Guided variants (live-guided, studio-guided) also take the engine's DSP masks of every frame,
computed by the engine's own C++ (build/models/libstemsphere_dsp_bridge.so, --dsp-bridge); their
loss skips the first WARMUP frames, where the DSP running medians still fill from silence.
"""
import argparse
import glob
import json
import math
import os
import random
import sys
import time

import numpy as np
import scipy.signal as sps
import torch
from scipy.io import wavfile

try:  # Debian's python3-soundfile; a GPU machine's Python may lack it (then WAV stems only)
    import soundfile as sf
except ImportError:
    sf = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stemsphere_model as sm  # noqa: E402

N_FFT, HOP, RATE = 1024, 256, 44100
WARMUP = 24  # frames (~0.14 s): longer than the DSP harmonic median (0.11 s)


def read_stem(base):
    """<base>.flac or <base>.wav as int16 (samples, 2)."""
    if os.path.exists(base + ".flac"):
        if sf is None:
            raise SystemExit(f"{base}.flac: reading FLAC needs python3-soundfile")
        return sf.read(base + ".flac", dtype="int16", always_2d=True)[0]
    _, x = wavfile.read(base + ".wav")
    if x.dtype != np.int16:
        raise SystemExit(f"{base}.wav: 16-bit PCM expected")
    return x.reshape(len(x), -1)


class SongPool:
    """Songs on disk; a rotating subset is held in RAM as int16 (CPU is scarcer than disk)."""

    def __init__(self, root, split, cache=48, rng=None):
        self.root, self.split, self.capacity = root, split, cache
        self.songs = []
        self.rescan()
        if not self.songs:
            raise SystemExit(f"no {split} songs under {root}")
        self.rng = rng or random.Random(0)
        self.cached = {}
        for i in self.rng.sample(range(len(self.songs)), min(cache, len(self.songs))):
            self._load(i)

    def _load(self, i):
        stems = [read_stem(f"{self.songs[i]}/{s}") for s in sm.STEMS]
        n = min(len(x) for x in stems)
        self.cached[i] = np.stack([x[:n] for x in stems])  # (4, samples, 2)

    def rescan(self):
        """Picks up songs the generator finished since the last scan (order stays stable)."""
        found = sorted(os.path.dirname(p) for p in
                       glob.glob(f"{self.root}/{self.split}_*/meta.json"))
        self.songs += [s for s in found if s not in set(self.songs)]

    def rotate(self):
        """Swaps one cached song for one not in RAM, so every song is seen over a run."""
        outside = [i for i in range(len(self.songs)) if i not in self.cached]
        if outside and len(self.cached) < self.capacity:
            self._load(self.rng.choice(outside))
        elif outside:
            del self.cached[self.rng.choice(list(self.cached))]
            self._load(self.rng.choice(outside))

    def pick(self, rng):
        return rng.choice(list(self.cached))

    def read(self, song, stem, start, length):
        x = self.cached[song][stem, start:start + length].astype(np.float32) / 32768.0
        if len(x) < length:
            x = np.concatenate([x, np.zeros((length - len(x), 2), np.float32)])
        return x

    def frames(self, song):
        return self.cached[song].shape[1]


def drive(x, rng):
    """Soft clipping (tanh) of one stem at a random drive, its RMS kept: belted and distorted
    vocals and driven guitars, which the clean PSOLA voices and GM guitars lack."""
    rms = math.sqrt(float((x ** 2).mean()))
    if rms < 1e-6:
        return x
    g = math.exp(rng.uniform(math.log(1.5), math.log(8.0)))
    y = np.tanh(x * (g / (4.0 * rms)))
    return (y * (rms / max(math.sqrt(float((y ** 2).mean())), 1e-9))).astype(x.dtype)


def bus_compress(stems, rng):
    """A mix-bus compressor: one gain curve from the mixture's level, applied to every stem, so
    the stems still sum to the mix. Produced music is compressed as a whole; generated songs
    are only compressed per stem."""
    power = (stems.sum(0) ** 2).mean(1)
    a = math.exp(-1.0 / (rng.uniform(0.005, 0.03) * RATE))  # detector time constant
    level_db = 10 * np.log10(sps.lfilter([1 - a], [1, -a], power) + 1e-12)
    threshold_db = 10 * math.log10(float(power.mean()) + 1e-12) + rng.uniform(-8.0, 2.0)
    ratio = rng.uniform(2.0, 6.0)
    gain_db = -np.maximum(level_db - threshold_db, 0.0) * (1 - 1 / ratio)
    r = math.exp(-1.0 / (rng.uniform(0.05, 0.2) * RATE))  # gain smoothing (release)
    gain = 10 ** (sps.lfilter([1 - r], [1, -r], gain_db) / 20)
    out = stems * gain.astype(stems.dtype)[None, :, None]
    after = float((out.sum(0) ** 2).mean())  # makeup gain: the mix keeps its mean power
    return out * np.float32(math.sqrt(float(power.mean()) / after)) if after > 1e-12 else stems


def draw_example(pool, rng, length, coherent, drive_p=0.0, bus_p=0.0):
    song = pool.pick(rng)
    start = rng.randrange(max(pool.frames(song) - length, 1))
    stems = []
    for j in range(len(sm.STEMS)):
        if not coherent:
            song = pool.pick(rng)
            start = rng.randrange(max(pool.frames(song) - length, 1))
        x = pool.read(song, j, start, length)
        gain = 10 ** (rng.uniform(-6, 6) / 20)
        if rng.random() < 0.07:
            gain = 0.0
        if sm.STEMS[j] in ("vocals", "other") and drive_p > 0 and rng.random() < drive_p:
            x = drive(x, rng)
        stems.append(x * gain)
    stems = np.stack(stems)  # (4, samples, 2)
    if bus_p > 0 and rng.random() < bus_p:
        stems = bus_compress(stems, rng)
    stems *= 10 ** (rng.uniform(-12, 4) / 20)
    if rng.random() < 0.5:
        stems = stems[:, :, ::-1]
    peak = np.abs(stems.sum(0)).max()
    if peak > 1.0:
        stems /= peak
    return stems


def spectra(signal, window):
    """(..., samples) -> complex (..., frames, bins), unnormalised like fftw r2c."""
    lead = signal.shape[:-1]
    s = torch.stft(signal.reshape(-1, signal.shape[-1]), N_FFT, HOP, window=window, center=False,
                   return_complex=True)
    return s.transpose(-1, -2).reshape(*lead, s.shape[-1], s.shape[-2])


def random_eq(rng, batch, bins, eq_db, kick_db):
    """(batch, 4, bins) linear gains: per example and stem (75 % of them), a smooth random EQ
    curve, +-eq_db at 6 log-spaced frequencies from 50 Hz to 16 kHz, linear in log f between.
    It keeps the network from learning the exact spectral envelopes of the few SoundFonts and
    synthetic voices it is trained on (real recordings have other ones). Half the drum stems
    also get a low shelf of 0..kick_db below ~150 Hz: in the generated songs the kick sits ~8 dB
    under the bass in that band, in produced pop/rock it is as loud or louder, and a network
    trained only on the former hands real kicks to the bass."""
    f = np.arange(bins) * RATE / N_FFT
    logf = np.log(np.maximum(f, 20.0))
    nodes = np.log(np.geomspace(50.0, 16000.0, 6))
    shelf = 1.0 / (1.0 + (f / 150.0) ** 4)
    gain_db = np.zeros((batch, 4, bins))
    for i in range(batch):
        for j in range(4):
            if eq_db > 0 and rng.random() < 0.75:
                gain_db[i, j] = np.interp(logf, nodes, [rng.uniform(-eq_db, eq_db) for _ in nodes])
        if kick_db > 0 and rng.random() < 0.5:
            gain_db[i, sm.STEMS.index("drums")] += rng.uniform(0, kick_db) * shelf
    return torch.from_numpy((10 ** (gain_db / 20)).astype(np.float32))


def make_batch(pool, rng, batch, frames, device, window, eq_db=0.0, kick_db=0.0, drive_p=0.0,
               bus_p=0.0):
    length = (frames - 1) * HOP + N_FFT
    ex = [draw_example(pool, rng, length, (i % 2 == 0), drive_p, bus_p) for i in range(batch)]
    stems = torch.from_numpy(np.ascontiguousarray(np.stack(ex))).to(device)  # (b, 4, n, 2)
    stems = stems.permute(0, 1, 3, 2)  # (b, 4, 2, n)
    stem_spec = spectra(stems, window)  # (b, 4, 2, T, F)
    if eq_db > 0 or kick_db > 0:  # EQ as a per-bin gain: stems and mixture stay consistent
        eq = random_eq(rng, batch, stem_spec.shape[-1], eq_db, kick_db).to(device)
        stem_spec = stem_spec * eq[:, :, None, None, :]
    return stem_spec.sum(1), stem_spec  # the STFT is linear: the mix spectrum is the sum


def loss_of(model, weights, mix_spec, stem_spec, dsp_masks=None, correction_l2=0.0):
    feats = sm.network_inputs(model, mix_spec[:, 0], mix_spec[:, 1], weights, N_FFT, dsp_masks)
    out = model(feats)
    masks = sm.output_masks(model, out, weights, dsp_masks)  # (b, T-d, 4, F)
    t = masks.shape[1]
    first = WARMUP if model.guided else 0
    masks = masks[:, first:].permute(0, 2, 1, 3).unsqueeze(2)  # (b, 4, 1, T', F)
    mix_mag = mix_spec[:, :, first:t].abs().unsqueeze(1)  # (b, 1, 2, T', F)
    target = stem_spec[:, :, :, first:t].abs()
    loss = (masks * mix_mag - target).abs().mean()
    if model.guided and correction_l2 > 0:
        # Trust in the synthetic data has a price: a correction of the DSP masks must pay for
        # itself in the loss. (A tanh bound instead saturated: raw corrections ran off to
        # hundreds, gradients vanished and the network froze into a fixed re-weighting.)
        loss = loss + correction_l2 * (out ** 2).mean()
    return loss


def main():
    global N_FFT
    ap = argparse.ArgumentParser(description="train the Stemsphere mask network")
    ap.add_argument("--data", required=True)
    ap.add_argument("--variant", choices=sorted(sm.VARIANTS), required=True)
    ap.add_argument("--run", required=True, help="checkpoint directory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=320)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=1e9)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch CPU threads, and DSP-bridge threads for guided variants")
    ap.add_argument("--cache", type=int, default=48, help="songs held in RAM at once")
    ap.add_argument("--eq-db", type=float, default=0.0,
                    help="random per-stem EQ augmentation range in dB (0: off)")
    ap.add_argument("--kick-db", type=float, default=0.0,
                    help="random low shelf on half the drum stems, up to this many dB (0: off)")
    ap.add_argument("--correction-l2", type=float, default=0.0,
                    help="guided variants: weight of the mean squared correction in the loss")
    ap.add_argument("--dsp-bridge", default=sm.DEFAULT_DSP_BRIDGE)
    ap.add_argument("--drive", type=float, default=0.0,
                    help="probability of soft clipping per vocal and per other stem (0: off)")
    ap.add_argument("--bus-comp", type=float, default=0.0,
                    help="probability of a mix-bus compressor per example (0: off)")
    ap.add_argument("--fft", type=int, default=N_FFT,
                    help="STFT size at 44.1 kHz (hop stays 256): the size the mode runs at")
    ap.add_argument("--init", default=None,
                    help="start a new run from this checkpoint's weights (fresh optimiser)")
    args = ap.parse_args()
    N_FFT = args.fft

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.run, exist_ok=True)
    ckpt_path = os.path.join(args.run, "checkpoint.pt")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    pool = SongPool(args.data, "train", cache=args.cache, rng=random.Random(args.seed + 1))
    window = sm.analysis_window(N_FFT).to(device)
    weights = sm.band_geometry(sm.band_weights(N_FFT, RATE, sm.VARIANTS[args.variant]["bands"]))
    weights = tuple(t.to(device) for t in weights)
    model = sm.MaskNet(**sm.VARIANTS[args.variant]).to(device)
    bridge = sm.DspBridge(args.dsp_bridge, args.threads) if model.guided else None

    def dsp_of(mix_spec):
        return bridge.masks(mix_spec, N_FFT, HOP, RATE) if bridge else None
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.setstate(ck["py_rng"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {step}", flush=True)
    elif args.init:
        model.load_state_dict(torch.load(args.init, map_location=device)["model"])
        print(f"initialised from {args.init}", flush=True)
    else:
        with torch.no_grad():  # fixed input normalisation from the training distribution
            feats = []
            for _ in range(8):
                mix_spec, _ = make_batch(pool, rng, args.batch, args.frames, device, window,
                                         args.eq_db, args.kick_db, args.drive, args.bus_comp)
                feats.append(sm.network_inputs(model, mix_spec[:, 0], mix_spec[:, 1], weights,
                                               N_FFT, dsp_of(mix_spec)))
            f = torch.cat(feats).reshape(-1, feats[0].shape[-1])
            model.feat_mean.copy_(f.mean(0))
            model.feat_std.copy_(f.std(0).clamp_min(0.1))

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "py_rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                    "variant": args.variant, "config": sm.VARIANTS[args.variant],
                    "songs": len(pool.songs)}, tmp)
        os.replace(tmp, ckpt_path)

    start = time.time()
    last_save = start
    running = None
    while step < args.steps:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        mix_spec, stem_spec = make_batch(pool, rng, args.batch, args.frames, device, window,
                                         args.eq_db, args.kick_db, args.drive, args.bus_comp)
        loss = loss_of(model, weights, mix_spec, stem_spec, dsp_of(mix_spec), args.correction_l2)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if step % 4 == 0:
            pool.rotate()
        if step % 100 == 0:
            pool.rescan()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 25 == 0:
            print(json.dumps({"step": step, "loss": round(running, 5), "lr": lr,
                              "elapsed_s": round(time.time() - start)}), flush=True)
        now = time.time()
        if now - last_save > 300 or step == args.steps:
            save()
            last_save = now
        if now - start > args.minutes * 60:
            save()
            print(f"time budget spent at step {step}; re-run to resume", flush=True)
            return
    save()
    print(f"done at step {step}", flush=True)


if __name__ == "__main__":
    main()
