#!/usr/bin/python3
"""Training songs closer to real records (issue 11, step 2): real drums, real guitars, sung vowels,
a production chain on every stem. Sources and licences: /work/shared/docs/real-sources.md,
models/README.md, models/ATTRIBUTION.md.

Per song (numpy seed = seed * 100003 + index + 500009, so songs never repeat generate.py's):
  drums   a Groove MIDI performance (groove/info.csv split "train" only, minus every file the
          evaluation's bench/quality/split.json names) played through the multi-microphone
          MuldjordKit: every hit plays the kit's recording at all 15 microphones, so the close
          mics carry the kit's real bleed; a random close / overhead / room balance per song;
  bass    the song's MMA bass line through FluidSynth (generate.py), when MMA and FluidSynth are
          installed; otherwise a plain synthesised bass on the chord roots;
  other   Karoryfer Black & Green guitar samples playing the song's chords (strummed or picked,
          from the MMA "other" MIDI when there is one) through an amp: pre-EQ, a tanh/asymmetric
          waveshaper with random drive and a guitarix cabinet impulse response
          (guitarix-common, /usr/share/gx_head/sounds/amps) or an own cabinet filter;
  vocals  a sung line: sustained vowels through formant filters, vibrato 5-7 Hz +-20-80 cents
          with a delayed onset, portamento between close notes, breaths before phrases,
          consonant noise, doubles and harmonies, then a vocal chain (compression, de-esser,
          slap delay, plate/room reverb). With --realvoice part of the lines come from real
          speech (asterisk-core-sounds-en-wav) put onto the same pitch contour by Praat PSOLA;
  then    a production chain on every stem (EQ, compression, saturation, reverb), bus
          compression and bus saturation folded back into the stems (the stems still sum to the
          mix exactly), and 16-bit FLAC stems + meta.json in the layout models/train.py reads.
`--remix N` adds N cross-song remixes (each stem from a different generated song).

Usage (one command: models/data/make_real_data.sh OUT [SEED] [SONGS] [SECONDS]):
  /usr/bin/python3 models/data/realdata.py --out DIR --songs 10 --seconds 10 --seed 1
"""
import argparse
import csv
import functools
import glob
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.signal as sps

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "quality"))  # sfz.py, drumkit.py, eval_sets.py
sys.path.insert(0, HERE)

import drumkit  # noqa: E402  (bench/quality: the SFZ reader and the MuldjordKit mapping)
import sfz  # noqa: E402
from generate import pan, reverb  # noqa: E402  (one room reverb and pan law for both generators)

RATE = 44100
MIRROR = os.environ.get("STEMSPHERE_MIRROR", "/work/.mirror")
KIT_REPO = "sfzinstruments/DrumGizmo.MuldjordKit"
GROOVE_REPO = "zharry29/drums-with-llm"
GUITAR_REPO = "kmturley/karoryfer.black-and-green-guitars"
SPLIT_JSON = os.path.join(ROOT, "bench", "quality", "split.json")
CABINETS = "/usr/share/gx_head/sounds/amps"
ASTERISK = "/usr/share/asterisk/sounds/en"
STEMS = ("vocals", "drums", "bass", "other")
DEFAULT_CACHE = "/var/cache/stemsphere/real-sources"

# MuldjordKit microphones by role: the balance is drawn per role, then per microphone.
CLOSE_MICS = ("KdrumL", "KdrumR", "Snare_top", "Snare_bottom", "Tom1", "Tom2", "Tom3", "Tom4",
              "Hihat", "RideL", "RideR")
OVERHEAD_MICS = ("OHL", "OHR")
ROOM_MICS = ("AmbL", "AmbR")
MIC_PAN = {"KdrumL": 0.0, "KdrumR": 0.0, "Snare_top": -0.05, "Snare_bottom": -0.05,
           "Tom1": -0.3, "Tom2": 0.05, "Tom3": 0.3, "Tom4": 0.5, "Hihat": -0.5, "RideL": -0.6,
           "RideR": 0.6, "OHL": -1.0, "OHR": 1.0, "AmbL": -1.0, "AmbR": 1.0}
# Trims (dB) that bring the raw recordings to a usual mix before the per-song balance: on a
# snare hit at velocity 100 the raw overheads read 25 dB and the room mics 2-4 dB below the snare
# top mic (tests/models/python measures the bleed); a mix has overheads about 10 dB below it.
MIC_TRIM_DB = {"OHL": 12.0, "OHR": 12.0, "AmbL": -8.0, "AmbR": -8.0}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class SourceMissing(RuntimeError):
    pass


# ------------------------------------------------------------------------------------ sources

def _git_dir(repo):
    d = os.path.join(MIRROR, repo.replace("/", "+"), "repo")
    if not os.path.isdir(d):
        raise SourceMissing(f"snapshot of github:{repo} not under {MIRROR} (fetch it: "
                            f"see models/README.md)")
    return d


def source_commit(repo):
    return subprocess.run(["git", "--git-dir=" + _git_dir(repo), "rev-parse", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()


def extract(repo, paths, cache):
    """Files of the snapshot at HEAD under cache/<repo>-<commit8>/ (eval_sets.extract: byte for
    byte, no line-ending rewrite); returns that folder."""
    import eval_sets
    commit = source_commit(repo)
    dest = os.path.join(cache, repo.split("/")[1] + "-" + commit[:8])
    eval_sets.extract(_git_dir(repo), commit, paths, dest)
    return dest


def eval_paths():
    """Every source path the evaluation split names (dev and test): never used for training."""
    with open(SPLIT_JSON) as f:
        return {c["path"] for c in json.load(f)["clips"]}


def groove_train_files(cache):
    """Groove MIDI files of the dataset's own train split that no evaluation clip uses."""
    info = subprocess.run(["git", "--git-dir=" + _git_dir(GROOVE_REPO), "show",
                           "HEAD:groove/info.csv"], check=True, capture_output=True,
                          text=True).stdout
    banned = eval_paths()
    rows = []
    for r in csv.DictReader(io.StringIO(info)):
        path = "groove/" + r["midi_filename"]
        if (r["split"] == "train" and path not in banned and r["time_signature"] == "4-4"
                and r["beat_type"] == "beat"):
            rows.append((path, float(r["bpm"]), float(r["duration"])))
    return sorted(rows)


# ------------------------------------------------------------------------------------ drums

class MultiMicKit:
    """The MuldjordKit (sfz.py regions) rendered to one mono signal per microphone."""

    def __init__(self, kit_dir):
        self.kit = drumkit.Kit(kit_dir)

    def render_mics(self, notes, seconds, rng=None):
        """{mic: mono float64 (N,)} of the hits in `notes` [(s, groove note, velocity)].
        rng adds +-4 ms humanising on top of the performance (None: as played)."""
        n = int(round(seconds * RATE))
        mics = {}
        self.kit.selector.counters.clear()
        for t, note, vel in notes:
            key = drumkit.GROOVE_TO_KIT.get(note)
            if key is None or t >= seconds:
                continue
            if rng is not None:
                t += rng.uniform(-0.004, 0.004)
            at = max(0, int(round(t * RATE)))
            for region in self.kit.selector.select(key, vel):
                rel = region.get("sample", "")
                mic = drumkit.mic_of(rel)
                if mic not in MIC_PAN or rel.startswith("*"):
                    continue
                s = self.kit.sample(rel) * sfz.velocity_gain(region, vel)
                m = min(len(s), n - at)
                if m <= 0:
                    continue
                buf = mics.setdefault(mic, np.zeros(n))
                buf[at:at + m] += s[:m]
        return mics


def draw_mic_balance(rng):
    """Per-song microphone gains (linear) and stereo width: close / overhead / room in dB."""
    close, over, room = rng.uniform(-6, 3), rng.uniform(-8, 2), rng.uniform(-20, -2)
    gains = {}
    for mic in MIC_PAN:
        base = close if mic in CLOSE_MICS else over if mic in OVERHEAD_MICS else room
        if mic == "Snare_bottom":
            base += rng.uniform(-14, -2)
        gains[mic] = 10 ** ((base + MIC_TRIM_DB.get(mic, 0.0) + rng.uniform(-3, 3)) / 20)
    return {"gains": gains, "width": float(rng.uniform(0.5, 1.0)),
            "db": {"close": float(close), "overhead": float(over), "room": float(room)}}


def mix_mics(mics, balance, seconds):
    n = int(round(seconds * RATE))
    out = np.zeros((n, 2))
    for mic, x in mics.items():
        p = MIC_PAN[mic] * (balance["width"] if mic not in CLOSE_MICS else 1.0)
        theta = (p + 1) * np.pi / 4
        g = balance["gains"][mic]
        out[:, 0] += g * np.cos(theta) * x[:n]
        out[:, 1] += g * np.sin(theta) * x[:n]
    return out


# ------------------------------------------------------------------------------------ guitar

_NOTE = re.compile(r"(twang|staccato)_([a-g]b?)(\d)_(?:(p|mf|f)_)?rr(\d)\.wav$")
# The sample names put c3 at MIDI 60 (twang_e3 measures 82.9 Hz: E2, the open low string).
GUITAR_OCTAVE_SHIFT = -1


def guitar_samples(files):
    """{(articulation, midi note): [(dynamic, path)]} from the sample file names."""
    out = {}
    for f in files:
        m = _NOTE.search(f)
        if m:
            note = sfz.note_number(m.group(2) + m.group(3)) + 12 * GUITAR_OCTAVE_SHIFT
            out.setdefault((m.group(1), note), []).append((m.group(4) or "mf", f))
    return out


def pick_sample(table, art, note, velocity, rng):
    """Nearest sampled note of the articulation (returns path, semitones to shift)."""
    keys = [k for k in table if k[0] == art] or list(table)
    best = min(keys, key=lambda k: (abs(k[1] - note), k[1]))
    dyn = "p" if velocity < 60 else "mf" if velocity < 100 else "f"
    choices = [p for d, p in table[best] if d == dyn] or [p for _, p in table[best]]
    return choices[rng.integers(len(choices))], note - best[1]


def chord_voicing(root_pc, third, fifth, low=52):
    """A 3-to-4-note guitar voicing from E3 up: root, fifth, octave, third."""
    root = low + (root_pc - low) % 12
    return [root, root + fifth, root + 12, root + 12 + third]


def guitar_part(chords, tempo, seconds, rng):
    """[(t, midi note, velocity, articulation)] strummed or picked chords, one chord per bar."""
    beat = 60.0 / tempo
    style = rng.choice(["strum8", "strum4", "arp", "power"])
    events = []
    bar = 0
    while bar * 4 * beat < seconds:
        root, third, fifth = chords[bar % len(chords)]
        voicing = chord_voicing(root, third, fifth)
        if style == "power":
            voicing = voicing[:3]
        for step in range(8 if style != "strum4" else 4):
            t = bar * 4 * beat + step * beat * (0.5 if style != "strum4" else 1.0)
            if t >= seconds:
                break
            if style == "arp":
                notes = [voicing[(step * 3 // 2) % len(voicing)]]
                spread = 0.0
            else:
                if rng.random() < 0.15:
                    continue
                down = step % 2 == 0
                notes = voicing if down else voicing[::-1][:3]
                spread = rng.uniform(0.006, 0.018)
            vel = int(np.clip(rng.normal(95 if step % 2 == 0 else 75, 10), 30, 127))
            art = "staccato" if style in ("power", "strum8") and rng.random() < 0.6 else "twang"
            for k, nn in enumerate(notes):
                events.append((t + k * spread + rng.uniform(0, 0.004), nn, vel, art))
        bar += 1
    return events


def render_guitar(events, table, root, seconds, rng, load):
    n = int(round(seconds * RATE))
    out = np.zeros(n)
    for event in events:
        t, note, vel, art = event[:4]
        hold = event[4] if len(event) > 4 else rng.uniform(0.6, 2.0)
        path, shift = pick_sample(table, art, note, vel, rng)
        s = load(os.path.join(root, path))
        if shift:
            s = sps.resample(s, max(8, int(len(s) / 2 ** (shift / 12))))
        a = max(0, int(t * RATE))
        m = min(len(s), n - a, int(RATE * hold))
        if m <= 0:
            continue
        seg = s[:m] * (0.3 + 0.7 * vel / 127)
        fade = min(m, int(0.03 * RATE))
        seg[m - fade:] *= np.linspace(1, 0, fade)
        out[a:a + m] += seg
    return out


@functools.lru_cache(maxsize=None)
def cabinet_irs():
    return tuple(sorted(glob.glob(os.path.join(CABINETS, "*.wav"))))


def amp(x, rng, load):
    """Amp simulation: pre-EQ, waveshaper with random drive, cabinet IR (guitarix) or filter.
    Returns (signal, description)."""
    drive_db = rng.uniform(0, 30)
    x = sps.sosfilt(sps.butter(1, rng.uniform(80, 250), "highpass", fs=RATE, output="sos"), x)
    b, a = biquad_peak(rng.uniform(600, 1500), rng.uniform(0, 8), 0.8)
    x = sps.lfilter(b, a, x)
    peak = np.max(np.abs(x)) + 1e-9
    g = 10 ** (drive_db / 20) / peak
    bias = rng.uniform(0, 0.3)
    y = np.tanh(g * x + bias) - np.tanh(bias)  # asymmetric: even harmonics like a tube stage
    irs = cabinet_irs()
    if irs and rng.random() < 0.8:
        ir_path = irs[rng.integers(len(irs))]
        ir = load(ir_path)
        y = sps.fftconvolve(y, ir)[:len(y)]
        cab = os.path.basename(ir_path)
    else:
        y = sps.sosfilt(sps.butter(4, rng.uniform(3500, 6000), "lowpass", fs=RATE,
                                   output="sos"), y)
        y = sps.sosfilt(sps.butter(2, 90, "highpass", fs=RATE, output="sos"), y)
        cab = "own-filter"
    return y, {"drive_db": float(drive_db), "bias": float(bias), "cabinet": cab}


# ------------------------------------------------------------------------------------ vocals

VOWELS = {  # F1..F4 (Hz) of sung vowels, an ordinary adult voice
    "a": (800, 1150, 2900, 3900), "e": (450, 1900, 2600, 3600), "i": (300, 2300, 3000, 3800),
    "o": (450, 800, 2830, 3800), "u": (325, 700, 2700, 3800), "ae": (650, 1700, 2500, 3500)}
FORMANT_BW = (80, 90, 120, 150)
FORMANT_LEVEL = (1.0, 0.7, 0.4, 0.3)


def pitch_contour(notes, total, rng, vibrato=None):
    """Per-sample f0 (Hz, 0 where silent) and the vibrato drawn: notes [(t0, t1, midi)].
    Portamento: a glide from the previous note when the gap is under 0.15 s; vibrato 5-7 Hz,
    +-20-80 cents (the sinusoid's amplitude), starting 0.15-0.4 s into a note, 0.2 s fade-in."""
    vib = vibrato or {"rate": float(rng.uniform(5, 7)), "cents": float(rng.uniform(20, 80)),
                      "delay": float(rng.uniform(0.15, 0.4))}
    cents = np.full(total, np.nan)
    prev = None
    for t0, t1, p in notes:
        a, b = int(t0 * RATE), min(int(t1 * RATE), total)
        if b <= a:
            continue
        since = np.arange(b - a) / RATE
        c = np.full(b - a, 100.0 * p)
        if prev is not None and t0 - prev[1] < 0.15:
            tau = rng.uniform(0.04, 0.12)
            c += 100.0 * (prev[2] - p) * np.exp(-since / tau * 3)
        fade = np.clip((since - vib["delay"]) / 0.2, 0, 1)
        c += vib["cents"] * fade * np.sin(2 * np.pi * vib["rate"] * since)
        drift = sps.sosfilt(sps.butter(1, 3, fs=RATE, output="sos"),
                            rng.standard_normal(b - a)) * 60
        c += drift
        cents[a:b] = c
        prev = (t0, t1, p)
    f0 = np.where(np.isnan(cents), 0.0, 440.0 * 2 ** ((np.nan_to_num(cents) - 6900) / 1200))
    return f0, vib


def _resonator(fc, bw):
    """Two-pole resonator with unit gain at its centre (each formant's level is set apart)."""
    r = np.exp(-np.pi * bw / RATE)
    w = 2 * np.pi * fc / RATE
    a = [1, -2 * r * np.cos(w), r * r]
    peak = abs(1 / (a[0] + a[1] * np.exp(-1j * w) + a[2] * np.exp(-2j * w)))
    return [1 / peak], a


def vowel_voice(notes, total, rng, vibrato=None, breathiness=None):
    """Mono sung line: glottal source on the contour, vowel formants per note, attack/release
    envelopes, consonant noise at some onsets. Returns (signal, f0, vibrato)."""
    f0, vib = pitch_contour(notes, total, rng, vibrato)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    src = np.zeros(total)
    tilt = rng.uniform(0.5, 1.0)  # glottal -12 dB/oct + lip radiation +6 dB/oct, give or take
    for k in range(1, 80):
        alive = f0 * k < 16000
        if not alive.any():
            break
        src += np.where(alive, np.sin(k * phase) / k ** tilt, 0.0)
    breath = rng.uniform(0.02, 0.12) if breathiness is None else breathiness
    noise = sps.sosfilt(sps.butter(2, [1500, 9000], "bandpass", fs=RATE, output="sos"),
                        rng.standard_normal(total))
    src += breath * noise * (1 + np.cos(phase)) * (f0 > 0)
    names = list(VOWELS)
    weights = np.zeros((len(names), total))
    env = np.zeros(total)
    for t0, t1, p in notes:
        a, b = int(t0 * RATE), min(int(t1 * RATE), total)
        if b <= a:
            continue
        weights[rng.integers(len(names)), a:b] = 1.0
        m = b - a
        atk, rel = min(m, int(rng.uniform(0.03, 0.08) * RATE)), min(m, int(0.06 * RATE))
        e = np.ones(m)
        e[:atk] = np.linspace(0, 1, atk)
        e[m - rel:] *= np.linspace(1, 0, rel)
        env[a:b] = np.maximum(env[a:b], e * rng.uniform(0.7, 1.0))
    smooth = sps.butter(1, 20, fs=RATE, output="sos")
    weights = sps.sosfiltfilt(smooth, weights, axis=1)
    ring = rng.uniform(1.0, 2.5)  # the "singer's formant" around 3 kHz, stronger in some voices
    voice = np.zeros(total)
    for i, name in enumerate(names):
        if not weights[i].any():
            continue
        y = np.zeros(total)
        for fc, bw, level in zip(VOWELS[name], FORMANT_BW, FORMANT_LEVEL):
            b, a = _resonator(fc * rng.uniform(0.95, 1.05), bw)
            y += sps.lfilter(b, a, src) * level * (ring if fc > 2500 else 1.0)
        voice += weights[i] * y
    voice *= env
    for t0, _, _ in notes:  # consonants: short noise bursts (sibilants feed the de-esser)
        if rng.random() < 0.4:
            a = int(max(0, t0 - 0.05) * RATE)
            m = min(int(rng.uniform(0.04, 0.09) * RATE), total - a)
            if m > 0:
                lo = rng.uniform(3500, 6000)
                burst = sps.sosfilt(sps.butter(2, [lo, 11000], "bandpass", fs=RATE,
                                               output="sos"), rng.standard_normal(m))
                voice[a:a + m] += burst * np.hanning(m) * rng.uniform(0.1, 0.4) * np.std(voice)
    return voice / (np.max(np.abs(voice)) + 1e-9), f0, vib


def breaths(phrases, total, rng):
    out = np.zeros(total)
    for notes in phrases:
        if not notes or rng.random() < 0.3:
            continue
        m = int(rng.uniform(0.18, 0.4) * RATE)
        a = int(notes[0][0] * RATE) - m - int(0.03 * RATE)
        if a < 0:
            continue
        x = sps.sosfilt(sps.butter(2, [rng.uniform(500, 1500), rng.uniform(5000, 9000)],
                                   "bandpass", fs=RATE, output="sos"), rng.standard_normal(m))
        out[a:a + m] += x * np.sin(np.linspace(0, np.pi, m)) ** 2
    return out / (np.max(np.abs(out)) + 1e-9) * 10 ** (rng.uniform(-30, -20) / 20)


def harmony_notes(notes, key, minor):
    """A diatonic third above each note (a harmony part)."""
    from generate import MAJOR, MINOR
    scale = MINOR if minor else MAJOR
    out = []
    for t0, t1, p in notes:
        pcs = sorted((key + s) % 12 for s in scale)
        up = [q for q in range(p + 1, p + 6) if q % 12 in pcs]
        out.append((t0, t1, up[1] if len(up) > 1 else p + 4))
    return out


@functools.lru_cache(maxsize=None)
def speech_files():
    """The Asterisk prompts minus every one the evaluation's speech set plays."""
    banned = {p for p in eval_paths() if p.startswith(ASTERISK)}
    return tuple(sorted(f for f in glob.glob(os.path.join(ASTERISK, "*.wav"))
                        if f not in banned))


def speech_line(notes, f0, total, rng, tmp):
    """Real speech (asterisk prompts, minus the evaluation's files) put onto the contour by Praat
    PSOLA; None when Praat or the prompts are missing."""
    if not shutil.which("praat") or not os.path.isdir(ASTERISK):
        return None
    files = speech_files()
    import soundfile as sf
    t0, t1 = notes[0][0], notes[-1][1]
    x, sr = sf.read(files[rng.integers(len(files))], dtype="float64")
    # About one syllable of speech per note (as generate.real_speech), from the spoken part.
    voiced = np.nonzero(np.abs(x) > 0.02 * (np.max(np.abs(x)) + 1e-9))[0]
    if len(voiced) < sr // 5:
        return None
    x = x[voiced[0]:voiced[-1]]
    length = min(len(x), int(float(np.clip(0.28 * len(notes), 0.7, 3.0)) * sr))
    start = int(rng.integers(0, len(x) - length + 1))
    x = x[start:start + length]
    base = os.path.join(tmp, f"sp{rng.integers(1 << 30)}")
    sf.write(base + ".wav", x, sr)
    src_dur = len(x) / sr
    factor = (t1 - t0) / src_dur
    from generate import write_tier
    write_tier(base + ".DurationTier", "DurationTier", src_dur, [(0.0, factor)])
    pts = [((t - t0) / factor, float(f0[int(t * RATE)])) for t in np.arange(t0, t1, 0.005)
           if int(t * RATE) < total and f0[int(t * RATE)] > 0]
    write_tier(base + ".PitchTier", "PitchTier", src_dur, pts)
    with open(base + ".list", "w") as f:
        f.write(base + "\n")
    subprocess.run(["praat", "--run", os.path.join(HERE, "sing.praat"), base + ".list",
                    str(int(rng.integers(1 << 30)))], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    y, ysr = sf.read(base + "_sung.wav", dtype="float64")
    y = sps.resample_poly(y, RATE, ysr)
    out = np.zeros(total)
    a = int(t0 * RATE)
    m = min(len(y), total - a)
    out[a:a + m] = y[:m]
    return out


def sing_song(phrases, plan, total, rng, tmp, realvoice):
    """Stereo vocal stem: lead (vowels or real speech), breaths, optional double and harmony."""
    lead = np.zeros(total)
    sources, vibs = [], []
    for notes in phrases:
        line, f0, vib = vowel_voice(notes, total, rng)
        vibs.append(vib)
        if realvoice and rng.random() < 0.5:
            sung = speech_line(notes, f0, total, rng, tmp)
            if sung is not None:
                line = sung / (np.max(np.abs(sung)) + 1e-9)
                sources.append("asterisk-psola")
            else:
                sources.append("vowels")
        else:
            sources.append("vowels")
        lead += line
    lead += breaths(phrases, total, rng)
    st = pan(lead, rng.uniform(-0.1, 0.1))
    info = {"sources": sources, "vibrato": vibs, "double": False, "harmony": False}
    all_notes = [n for ph in phrases for n in ph]
    if all_notes and rng.random() < 0.4:  # double: a second take, late, detuned, wide
        d = rng.uniform(0.012, 0.035)
        dbl, _, _ = vowel_voice([(a + d, b + d, p + rng.uniform(-0.08, 0.08))
                                 for a, b, p in all_notes], total, rng)
        w = rng.uniform(0.5, 0.9)
        g = rng.uniform(0.3, 0.6)
        st += g * pan(dbl, w if rng.random() < 0.5 else -w)
        info["double"] = True
    if all_notes and rng.random() < 0.35:  # harmony a third above, quieter, panned
        har, _, _ = vowel_voice(harmony_notes(all_notes, plan["key"], plan["minor"]), total, rng)
        st += pan(har, rng.choice([-0.5, 0.5])) * rng.uniform(0.2, 0.45)
        info["harmony"] = True
    return st, info


def vocal_chain(x, rng):
    """HPF, compression, de-esser, presence EQ, slap delay, plate or room reverb."""
    x = sps.sosfilt(sps.butter(2, rng.uniform(80, 140), "highpass", fs=RATE, output="sos"),
                    x, axis=0)
    x = compress(x, rng, ratio=(3, 6), attack=0.005, release=0.08)
    x = deess(x, rng)
    b, a = biquad_peak(rng.uniform(2500, 5000), rng.uniform(0, 4), 1.0)
    x = sps.lfilter(b, a, x, axis=0)
    b, a = biquad_peak(rng.uniform(9000, 12000), rng.uniform(0, 6), 0.7)  # "air"
    x = sps.lfilter(b, a, x, axis=0)
    if rng.random() < 0.5:  # slap delay: one filtered echo 70-140 ms
        d = int(rng.uniform(0.07, 0.14) * RATE)
        echo = np.zeros_like(x)
        echo[d:] = x[:-d]
        echo = sps.sosfilt(sps.butter(2, [300, 4000], "bandpass", fs=RATE, output="sos"),
                           echo, axis=0)
        x = x + echo * 10 ** (rng.uniform(-18, -9) / 20)
    kind = "plate" if rng.random() < 0.6 else "room"
    x = reverb(x, rng, rng.uniform(0.12, 0.35), t60=(1.2, 2.8) if kind == "plate" else
               (0.3, 0.9), bright=kind == "plate")
    return x, kind


def deess(x, rng):
    """Split-band de-esser: gain on the 5-10 kHz band when its envelope passes a threshold."""
    sos = sps.butter(2, [5000, 10000], "bandpass", fs=RATE, output="sos")
    band = sps.sosfilt(sos, x, axis=0)
    env = np.sqrt(sps.lfilter([0.01], [1, -0.99], np.mean(band ** 2, axis=1)) + 1e-12)
    thr = np.percentile(env, 90) * rng.uniform(0.3, 0.7) + 1e-9
    gain = np.minimum(1.0, (thr / env) ** 0.7)
    return x - band * (1 - gain)[:, None]


# ------------------------------------------------------------------------------------ production

def biquad_peak(fc, gain_db, q):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * fc / RATE
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.array(b) / den[0], np.array(den) / den[0]


def compressor_gain(x, thr_db, ratio, attack, release):
    """Gain curve (N,) of a feed-forward compressor (peak-ish detector, attack/release)."""
    level = np.sqrt(np.mean(x ** 2, axis=1) * 2 + 1e-12)
    # Attack/release smoothing in the dB domain, vectorised as two one-pole passes.
    db = 20 * np.log10(level)
    over = np.maximum(db - thr_db, 0)
    red = over * (1 - 1 / ratio)
    a_rel = np.exp(-1 / (release * RATE))
    a_att = np.exp(-1 / (attack * RATE))
    slow = sps.lfilter([1 - a_rel], [1, -a_rel], red)
    red = np.maximum(red, slow)  # held reductions decay at the release rate
    red = sps.lfilter([1 - a_att], [1, -a_att], red)
    return 10 ** (-red / 20)


def compress(x, rng, ratio=(2, 5), attack=0.01, release=0.15):
    rms_db = 10 * np.log10(np.mean(x ** 2) + 1e-12)
    g = compressor_gain(x, rms_db + rng.uniform(-4, 6), rng.uniform(*ratio), attack, release)
    return x * g[:, None]


def saturate(x, rng, drive_db=None):
    d = 10 ** ((rng.uniform(0, 12) if drive_db is None else drive_db) / 20)
    peak = np.max(np.abs(x)) + 1e-9
    return np.tanh(x * d / peak) * peak / d if d > 1.0 else x


def stem_chain(name, x, rng):
    """EQ, compression, saturation, reverb on one stem (vocals get vocal_chain first)."""
    info = {}
    if name == "vocals":
        x, info["reverb"] = vocal_chain(x, rng)
    x = sps.sosfilt(sps.butter(2, rng.uniform(20, 60 if name in ("drums", "bass") else 150),
                               "highpass", fs=RATE, output="sos"), x, axis=0)
    for _ in range(2):
        b, a = biquad_peak(rng.uniform(80, 9000), rng.uniform(-5, 5), rng.uniform(0.5, 2))
        x = sps.lfilter(b, a, x, axis=0)
    if name != "vocals" and rng.random() < 0.7:
        x = compress(x, rng, attack=rng.uniform(0.002, 0.03), release=rng.uniform(0.05, 0.3))
        info["comp"] = True
    if rng.random() < 0.5:
        drive = rng.uniform(0, 12)
        x = saturate(x, rng, drive)
        info["saturation_db"] = float(drive)
    if name != "vocals" and rng.random() < 0.5:
        x = reverb(x, rng, rng.uniform(0.05, 0.25), t60=(0.3, 1.5))
        info["reverb"] = "room"
    return x, info


def bus_process(stems, rng, comp=True, sat=True):
    """Mix-bus compression and saturation folded back into the stems: the compressor's gain curve
    multiplies every stem; the saturation's difference (sat(mix) - mix) is shared out in
    proportion to each stem's short-time energy. The stems sum to the processed mix exactly."""
    mix = sum(stems.values())
    info = {}
    if comp:
        g = compressor_gain(mix, 10 * np.log10(np.mean(mix ** 2) + 1e-12) + rng.uniform(0, 6),
                            rng.uniform(1.5, 4), rng.uniform(0.005, 0.03),
                            rng.uniform(0.1, 0.4))
        stems = {k: v * g[:, None] for k, v in stems.items()}
        mix = mix * g[:, None]
        info["bus_comp_min_gain_db"] = float(20 * np.log10(g.min()))
    if sat:
        drive = rng.uniform(0, 6)
        diff = saturate(mix, rng, drive) - mix
        smooth = sps.butter(1, 50, fs=RATE, output="sos")
        energy = {k: sps.sosfilt(smooth, np.abs(v), axis=0) + 1e-9 for k, v in stems.items()}
        total = sum(energy.values())
        stems = {k: v + diff * energy[k] / total for k, v in stems.items()}
        info["bus_saturation_db"] = float(drive)
    return stems, info


RMS_DB = {"vocals": (-18, -12), "drums": (-21, -14), "bass": (-22, -15), "other": (-22, -14)}


# ------------------------------------------------------------------------------------ songs

class Sources:
    """The fetched snapshots, extracted once into a cache folder (one per process)."""

    def __init__(self, cache):
        import soundfile as sf
        self.sf = sf
        self.cache = cache
        kit_root = extract(KIT_REPO, ["DrumGizmo/MuldjordKit"], cache)
        self.kit = MultiMicKit(os.path.join(kit_root, "DrumGizmo", "MuldjordKit"))
        self.grooves = groove_train_files(cache)
        self.groove_root = extract(GROOVE_REPO, [p for p, _, _ in self.grooves], cache)
        files = subprocess.run(["git", "--git-dir=" + _git_dir(GUITAR_REPO), "ls-tree", "-r",
                                "--name-only", "HEAD", "Samples/"], check=True,
                               capture_output=True, text=True).stdout.split("\n")
        self.guitars = {}
        for g in ("green", "black"):
            sel = [f for f in files if f.startswith(f"Samples/{g}/ord/")
                   or f.startswith(f"Samples/{g}/stac/")]
            self.guitar_root = extract(GUITAR_REPO, sel, cache)
            self.guitars[g] = guitar_samples(sel)
        self._audio = {}
        self.commits = {r: source_commit(r) for r in (KIT_REPO, GROOVE_REPO, GUITAR_REPO)}

    def load(self, path):
        """Mono float64 at RATE (cached)."""
        if path not in self._audio:
            x, sr = self.sf.read(path, dtype="float64", always_2d=True)
            x = x[:, 0]
            if sr != RATE:
                g = math.gcd(int(sr), RATE)
                x = sps.resample_poly(x, RATE // g, int(sr) // g)
            self._audio[path] = x
        return self._audio[path]


def song_plan(rng, grooves, seconds):
    from generate import PROGRESSIONS, chord_symbol
    long_enough = [g for g in grooves if g[2] >= seconds + 1] or grooves
    path, bpm, duration = long_enough[rng.integers(len(long_enough))]
    bar = 4 * 60.0 / bpm
    bars_avail = max(0, int((duration - seconds - 1) / bar))
    minor = bool(rng.random() < 1 / 3)
    key = int(rng.integers(12))
    prog = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    chords = []
    for degree in prog:
        _, root, third, fifth = chord_symbol(key, minor, degree, False)
        chords.append((root, third, fifth))
    return {"groove": path, "tempo": bpm, "groove_start": float(rng.integers(bars_avail + 1) * bar),
            "key": key, "minor": minor, "progression": prog, "chords": chords,
            "bars": int(math.ceil(seconds / bar)) + 1, "female": bool(rng.random() < 0.5)}


def bass_line(chords, tempo, seconds, rng):
    """Plain synthesised bass on the chord roots (used when FluidSynth is not installed)."""
    n = int(seconds * RATE)
    out = np.zeros(n)
    beat = 60.0 / tempo
    t, step = 0.0, 0
    pattern = rng.choice([1.0, 0.5, 2.0])
    tone = rng.uniform(1.2, 2.5)
    while t < seconds:
        root = chords[int(t / (4 * beat)) % len(chords)][0]
        note = 28 + (root - 4) % 12 + (12 if rng.random() < 0.15 else 0)
        f = 440 * 2 ** ((note - 69) / 12)
        m = min(int(pattern * beat * RATE * 0.95), n - int(t * RATE))
        tt = np.arange(m) / RATE
        x = sum(np.sin(2 * np.pi * f * k * tt) / k ** tone for k in range(1, 8))
        x *= np.exp(-tt * rng.uniform(1, 4)) * np.minimum(1, tt / 0.005)
        a = int(t * RATE)
        out[a:a + m] += x * rng.uniform(0.7, 1.0)
        t += pattern * beat
        step += 1
    return out


def mma_parts(plan, rng, tmp):
    """The song's accompaniment MIDI from MMA (generate.py: a train-split style, the song's
    chords and the groove's tempo): the bass line rendered by FluidSynth and the notes of the
    "other" tracks [(t, length, note, velocity)]. None when MMA or FluidSynth is missing."""
    import generate as gen
    fonts = [f for f in gen.SOUNDFONTS if os.path.exists(f)]
    if not (shutil.which("mma") and shutil.which("fluidsynth") and fonts):
        return None
    import mido
    while True:
        style = gen.TRAIN_STYLES[rng.integers(len(gen.TRAIN_STYLES))]
        grooves = gen.grooves_of(style)
        if grooves:
            break
    mplan = {"tempo": int(round(plan["tempo"])), "bars": plan["bars"], "key": plan["key"],
             "minor": plan["minor"], "progression": plan["progression"], "sevenths": False,
             "verse_groove": grooves[rng.integers(len(grooves))],
             "chorus_groove": grooves[rng.integers(len(grooves))],
             "drum_source": "gm", "drum_kit": 0}
    mma_file, mid = os.path.join(tmp, "song.mma"), os.path.join(tmp, "song.mid")
    gen.write_mma(mplan, mma_file, int(rng.integers(1 << 30)))
    subprocess.run(["mma", mma_file, "-f", mid], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    paths = gen.split_midi(mid, mplan, rng, tmp)
    out = {"style": style, "groove": mplan["verse_groove"], "bass": None, "other_notes": []}
    if "bass" in paths:
        font = fonts[rng.integers(len(fonts))]
        out["bass"] = gen.render_midi(paths["bass"], font, os.path.join(tmp, "bass.wav"))
        out["bass_font"] = os.path.basename(font)
    if "other" in paths:
        t, active = 0.0, {}
        for m in mido.MidiFile(paths["other"]):
            t += m.time
            if m.type == "note_on" and m.velocity > 0:
                active[(m.channel, m.note)] = (t, m.velocity)
            elif m.type in ("note_off", "note_on") and (m.channel, m.note) in active:
                t0, vel = active.pop((m.channel, m.note))
                out["other_notes"].append((t0, t - t0, m.note, vel))
    return out


def guitar_from_midi(notes, rng):
    """The "other" MIDI notes played on the guitar: folded into its range (E2-E5), at most four
    notes per onset (a chord voicing), picked or strummed (a few ms between strings)."""
    by_onset = {}
    for t, length, note, vel in sorted(notes):
        by_onset.setdefault(round(t, 2), []).append((t, length, note, vel))
    events = []
    art = "staccato" if rng.random() < 0.3 else "twang"
    for _, group in sorted(by_onset.items()):
        folded = sorted({40 + (n - 40) % 24 if not 40 <= n <= 76 else n
                         for _, _, n, _ in group})[:4]
        t, length, _, vel = group[0]
        spread = rng.uniform(0.004, 0.015) if len(folded) > 1 else 0.0
        for k, n in enumerate(folded):
            events.append((t + k * spread, n, vel, art, length + 0.05))
    return events


def make_song(index, args, src):
    name = f"{args.split}_real{index:05d}"
    out_dir = os.path.join(args.out, name)
    if os.path.exists(os.path.join(out_dir, "meta.json")):
        return None
    t_start = time.time()
    song_seed = args.seed * 100003 + index + 500009
    rng = np.random.default_rng(song_seed)
    seconds = args.seconds
    total = int(round(seconds * RATE))
    plan = song_plan(rng, src.grooves, seconds)
    from generate import melody
    mel_plan = {"tempo": plan["tempo"], "female": plan["female"], "minor": plan["minor"],
                "key": plan["key"], "bars": plan["bars"]}
    chords_per_bar = [plan["chords"][b % 4] for b in range(plan["bars"])]
    phrases = [[n for n in ph if n[0] < seconds] for ph in melody(mel_plan, chords_per_bar, rng)]
    phrases = [ph for ph in phrases if ph]

    # drums
    notes = drumkit.read_midi_notes(os.path.join(src.groove_root, plan["groove"]))
    notes = [(t - plan["groove_start"], n, v) for t, n, v in notes
             if plan["groove_start"] - 0.5 <= t < plan["groove_start"] + seconds]
    notes = [(max(t, 0.0), n, v) for t, n, v in notes]
    balance = draw_mic_balance(rng)
    drums = mix_mics(src.kit.render_mics(notes, seconds, rng), balance, seconds)

    tmp = tempfile.mkdtemp(prefix="stemsphere-real-")
    try:
        parts = mma_parts(plan, rng, tmp) if not args.no_mma else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # other: guitar through an amp, playing the song's MIDI (or its own strum pattern)
    guitar = ("green", "black")[rng.integers(2)]
    if parts and parts["other_notes"] and rng.random() < 0.7:
        events = guitar_from_midi([n for n in parts["other_notes"] if n[0] < seconds], rng)
        plan["guitar_part"] = "mma:" + parts["style"]
    else:
        events = guitar_part(chords_per_bar, plan["tempo"], seconds, rng)
        plan["guitar_part"] = "strum"
    dry = render_guitar(events, src.guitars[guitar], src.guitar_root, seconds, rng, src.load)
    wet, amp_info = amp(dry, rng, src.load)
    other = pan(wet, rng.uniform(-0.6, 0.6))
    if rng.random() < 0.5:  # double-tracked rhythm guitar: a second take panned opposite
        ev2 = [(e[0] + rng.uniform(-0.01, 0.01),) + tuple(e[1:]) for e in events]
        dry2 = render_guitar(ev2, src.guitars[guitar], src.guitar_root, seconds, rng, src.load)
        other = pan(wet, -0.7) + pan(amp(dry2, np.random.default_rng(song_seed + 1),
                                         src.load)[0], 0.7)
        amp_info["double"] = True

    # bass: the MMA bass line through FluidSynth, else a plain synthesised one
    if parts and parts["bass"] is not None:
        bass = np.zeros((total, 2))
        m = min(total, len(parts["bass"]))
        bass[:m] = parts["bass"][:m]
        plan["bass_source"] = "fluidsynth:" + parts["bass_font"]
    else:
        bass = pan(bass_line(chords_per_bar, plan["tempo"], seconds, rng), 0.0)
        plan["bass_source"] = "synth"

    # vocals
    tmp = tempfile.mkdtemp(prefix="stemsphere-real-")
    try:
        vocals, voc_info = sing_song(phrases, plan, total, rng, tmp, args.realvoice)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    stems = {"vocals": vocals, "drums": drums, "bass": bass, "other": other}
    chain = {}
    for k in STEMS:
        x, chain[k] = stem_chain(k, stems[k], rng)
        rms = np.sqrt(np.mean(x ** 2))
        if rms > 1e-7:
            x = x * 10 ** (rng.uniform(*RMS_DB[k]) / 20) / rms
        stems[k] = x
    stems, bus = bus_process(stems, rng)
    mix = sum(stems.values())
    gain = min(1.0, 10 ** (-1 / 20) / (np.max(np.abs(mix)) + 1e-9))
    os.makedirs(out_dir, exist_ok=True)
    levels = {}
    for k in STEMS:
        x = (stems[k] * gain).astype(np.float32)
        levels[k] = float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))
        src.sf.write(os.path.join(out_dir, f"{k}.flac"), x, RATE, subtype="PCM_16")
    plan.update({"seconds": seconds, "phrases": phrases, "drum_mics": balance["db"], "drum_width": balance["width"],
                 "guitar": guitar, "amp": amp_info, "vocals": voc_info, "chain": chain,
                 "bus": bus, "levels_dbfs": levels, "seed": song_seed,
                 "sources": {f"github:{r}": c for r, c in src.commits.items()},
                 "cpu_seconds": time.time() - t_start})
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(plan, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else o)
    return out_dir


def make_remix(index, args, songs, rng_seed):
    """A cross-song remix: each stem from a different song (random start, +-4 dB)."""
    import soundfile as sf
    name = f"{args.split}_remix{index:05d}"
    out_dir = os.path.join(args.out, name)
    if os.path.exists(os.path.join(out_dir, "meta.json")):
        return None
    rng = np.random.default_rng(rng_seed)
    picks = rng.choice(len(songs), size=len(STEMS), replace=len(songs) < len(STEMS))
    stems, used = {}, {}
    for k, i in zip(STEMS, picks):
        x, _ = sf.read(os.path.join(songs[i], f"{k}.flac"), dtype="float64", always_2d=True)
        shift = int(rng.integers(len(x)))
        stems[k] = np.roll(x, -shift, axis=0) * 10 ** (rng.uniform(-4, 4) / 20)
        used[k] = {"song": os.path.basename(songs[i]), "shift": shift}
    n = min(len(v) for v in stems.values())
    stems = {k: v[:n] for k, v in stems.items()}
    mix = sum(stems.values())
    gain = min(1.0, 10 ** (-1 / 20) / (np.max(np.abs(mix)) + 1e-9))
    os.makedirs(out_dir, exist_ok=True)
    for k in STEMS:
        sf.write(os.path.join(out_dir, f"{k}.flac"), (stems[k] * gain).astype(np.float32), RATE,
                 subtype="PCM_16")
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump({"remix_of": used, "seconds": n / RATE}, f, indent=1)
    return out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--songs", type=int, default=10)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--split", default="train", choices=["train"],
                    help="only a train split: the evaluation sets are bench/quality's")
    ap.add_argument("--remix", type=int, default=0, help="cross-song remixes to add")
    ap.add_argument("--realvoice", action="store_true",
                    help="half the phrases from real speech (asterisk prompts) by Praat PSOLA")
    ap.add_argument("--no-mma", action="store_true",
                    help="own strum patterns and a synthesised bass instead of MMA + FluidSynth")
    ap.add_argument("--cache", default=os.environ.get("STEMSPHERE_REAL_CACHE", DEFAULT_CACHE))
    args = ap.parse_args()
    if args.seconds <= 0 or args.songs < 0:
        sys.exit("--seconds must be > 0 and --songs >= 0")
    try:
        src = Sources(args.cache)
    except SourceMissing as e:
        sys.exit(str(e))
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.first, args.first + args.songs):
        t = time.time()
        d = make_song(i, args, src)
        if d:
            log(f"song {os.path.basename(d)} ok ({time.time() - t:.1f} s)")
    if args.remix:
        songs = sorted(os.path.dirname(p) for p in
                       glob.glob(os.path.join(args.out, f"{args.split}_real*/meta.json")))
        if len(songs) < 2:
            sys.exit("--remix needs at least 2 generated songs in --out")
        for i in range(args.remix):
            d = make_remix(i, args, songs, args.seed * 100003 + 900001 + i)
            if d:
                log(f"remix {os.path.basename(d)} ok")


if __name__ == "__main__":
    main()
