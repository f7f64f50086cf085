#!/usr/bin/python3
"""Synthetic 4-stem song generator (vocals / drums / bass / other), licence-clean.

Recipe: /work/shared/docs/training-data.md. Per song:
  plan (key, mode, tempo, progression, MMA style + verse/chorus grooves, singer, sound sets)
  -> MMA accompaniment MIDI -> split by channel/program into drums / bass / other / vox-pad
  -> FluidSynth renders each stem dry (FluidR3 / TimGM6mb; drums also from the AVL kits)
  -> melody generator -> espeak-ng speech per phrase -> Praat PSOLA onto the notes (vibrato,
     glides, formant shift) -> bandwidth extension above the 22.05 kHz voice's Nyquist
  -> per-stem EQ, compression, reverb, pan, RMS targets, one common gain (stems sum to the mix)
  -> 16-bit FLAC stems + meta.json.

Reproducible: song i of a set uses numpy seed (seed * 100003 + i). Resumable: songs whose
meta.json exists are skipped. Usage:
  nice -n 19 /usr/bin/python3 models/data/generate.py --out DIR --songs 200 --seed 1 [--split test]
The "test" split draws only from held-out MMA styles (never used by "train"), so it measures
generalisation to unseen grooves.
"""
import argparse
import functools
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import mido
import numpy as np
import scipy.signal as sps
import soundfile as sf

RATE = 44100
SF2 = "/usr/share/sounds/sf2"
SOUNDFONTS = [f"{SF2}/FluidR3_GM.sf2", f"{SF2}/TimGM6mb.sf2"]
# --musescore adds MuseScore General (MIT, package musescore-general-soundfont-small): sampled
# instruments and kits closer to real recordings than the two GM banks (drawn for half the stems).
MUSESCORE = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
AVL_KITS = [f"{SF2}/Black_Pearl_4_LV2.sf2", f"{SF2}/Red_Zeppelin_4_LV2.sf2"]
GM_KITS = [0, 1, 8, 16, 24, 25, 32, 40]
# --realvoice: most male vocal lines from real recorded speech (festvox-ru, BSD-like licence).
FESTVOX_RU = "/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav"
# --hydrogen adds the real recorded kits of hydrogen-drumkits (GPL-2 / CC-BY(-SA) / CC0, per kit),
# played by a small sampler (hydrogen_kit, render_hydrogen). Hand-percussion-only kits are left out.
HYDROGEN = "/usr/share/hydrogen/data/drumkits"
# --ttsvoices adds the corpus-based English voices (training-data.md §5.4): festival's HTS slt
# (female, 32 kHz, statistical voice built from a real speaker's recordings) and flite's slt,
# rms, awb and kal. espeak-ng is formant synthesis, and no female voice built from a real
# speaker was in the data before.
HTS_SLT = "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"
FLITE_MALE = ["rms", "awb", "kal16"]
HYDROGEN_KITS = ["Audiophob", "BJA_Pacific", "ColomboAcousticDrumkit", "ElectricEmpireKit",
                 "ForzeeStereo", "HardElectro1", "Millo-Drums_v.1", "Millo_MultiLayered2",
                 "Millo_MultiLayered3", "The Black Pearl 1.0", "VariBreaks", "rumpf_kit_z01_h2"]
# Instrument name keywords -> GM drum note (first match wins), and fallbacks for missing roles.
DRUM_ROLES = [("pedal", 44), ("open", 46), ("semi", 46), ("hat", 42), ("hh", 42), ("kick", 36),
              ("bass drum", 36), ("bassdrum", 36), ("bd", 36), ("stick", 37), ("rim", 37),
              ("snare", 38), ("sd", 38), ("clap", 39), ("floor", 41), ("low", 43), ("mid", 47),
              ("high", 50), ("hi tom", 50), ("tom", 45), ("bell", 53), ("ride", 51), ("crash", 49),
              ("china", 57), ("splash", 57), ("cymbal", 49)]
DRUM_FALLBACK = {35: 36, 36: 35, 40: 38, 38: 40, 44: 42, 46: 42, 42: 44, 41: 43, 43: 45, 45: 47,
                 47: 48, 48: 50, 50: 48, 51: 59, 59: 51, 53: 51, 49: 57, 57: 49, 52: 49, 55: 49,
                 37: 38, 39: 38, 54: 42, 56: 37, 69: 42, 70: 42}
MMA_LIB = "/usr/share/mma/lib/stdlib"
TRAIN_STYLES = ["8beat", "50srock", "60srock", "ballad", "basicrock", "bossanova", "bubblerock",
                "bvfunk", "dsoul", "folkrock", "guitarballad", "jazzrock", "lfusion", "pianoballad",
                "popballad", "rb", "rockballad", "samba", "ska", "softrock", "trance", "twist",
                "swing", "shuffleboggie", "salsa", "blues", "folk", "countryblues", "merengue",
                "beguine", "mambo", "rhumba"]
TEST_STYLES = ["strut", "rb-ballad", "zydeco", "slowcountry", "hillcountry", "son", "chacha",
               "calypso"]
PROGRESSIONS = [[1, 5, 6, 4], [1, 6, 4, 5], [6, 4, 1, 5], [1, 4, 5, 4], [1, 4, 6, 5], [2, 5, 1, 6],
                [1, 3, 4, 5], [4, 5, 3, 6], [1, 5, 4, 5], [6, 5, 4, 5], [1, 6, 2, 5], [1, 4, 1, 5],
                [4, 1, 5, 6], [1, 2, 4, 5]]
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
VOX_PROGRAMS = {52, 53, 54, 85, 91}
ESPEAK_LANGS = ["en-us", "en-us", "en-gb", "es", "it", "de", "fr", "pt", "pl", "sv", "nl"]
SYLLABLES = ["la", "na", "da", "ma", "ba", "lo", "no", "yeah", "oh", "love", "you", "me", "my",
             "way", "day", "night", "light", "heart", "go", "so", "be", "free", "time", "home",
             "run", "fall", "call", "all", "sky", "high", "down", "town", "rain", "again", "stay",
             "hold", "cold", "gold", "dream", "seem", "fire", "true", "blue", "sun", "one", "eyes"]
RHYTHMS = [  # 2-bar phrases in beats: (onset, length); the phrase ends with a rest
    [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (6, 1)],
    [(0, 0.5), (0.5, 0.5), (1, 1), (2, 1.5), (4, 1), (5, 1), (6, 1)],
    [(0, 1.5), (1.5, 0.5), (2, 2), (4, 1.5), (5.5, 0.5), (6, 1)],
    [(1, 1), (2, 1), (3, 1), (4, 3)],
    [(0, 0.5), (0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 1), (3, 1), (4, 2)],
    [(0, 2), (2, 2), (4, 2.5)],
    [(0.5, 0.5), (1, 1), (2, 0.5), (2.5, 0.5), (3, 1), (4, 1), (5, 2)],
    [(0, 1), (1, 0.5), (1.5, 1.5), (3, 1), (4, 1), (5, 1.5)],
    [(0, 0.75), (0.75, 0.75), (1.5, 0.5), (2, 2), (4, 0.5), (4.5, 0.5), (5, 1), (6, 1)],
    [(2, 1), (3, 0.5), (3.5, 0.5), (4, 1), (5, 1), (6, 1.5)],
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def grooves_of(style):
    names = []
    with open(f"{MMA_LIB}/{style}.mma", encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].lower() == "defgroove":
                g = parts[1]
                if not any(k in g.lower() for k in ("intro", "end", "fill", "break")):
                    names.append(g)
    return names


def chord_symbol(key, minor, degree, seventh):
    scale = MINOR if minor else MAJOR
    root = (key + scale[degree - 1]) % 12
    third = (scale[(degree + 1) % 7] - scale[degree - 1]) % 12
    quality = "m" if third == 3 else ""
    fifth = (scale[(degree + 3) % 7] - scale[degree - 1]) % 12
    if fifth == 6:
        quality = "mb5"
    if seventh and quality != "mb5":
        quality += "7"
    return NOTE_NAMES[root] + quality, root, third, fifth


def plan_song(rng, split, soundfonts=tuple(SOUNDFONTS), hydrogen=False, realvoice=False,
              ttsvoices=False):
    styles = TEST_STYLES if split == "test" else TRAIN_STYLES
    while True:
        style = styles[rng.integers(len(styles))]
        grooves = grooves_of(style)
        if grooves:
            break
    minor = rng.random() < 1 / 3
    plan = {
        "style": style,
        "verse_groove": grooves[rng.integers(len(grooves))],
        "chorus_groove": grooves[rng.integers(len(grooves))],
        "key": int(rng.integers(12)),
        "minor": bool(minor),
        "tempo": int(rng.integers(72, 149)),
        "progression": PROGRESSIONS[rng.integers(len(PROGRESSIONS))],
        "sevenths": bool(rng.random() < 0.2),
        "bars": 16,
        "drum_source": "avl" if rng.random() < 0.4 else "gm",
        "soundfont": {s: soundfonts[rng.integers(len(soundfonts))] for s in
                      ("drums", "bass", "other", "voxpad")},
        "female": bool(rng.random() < 0.5),
        "voice_lang": ESPEAK_LANGS[rng.integers(len(ESPEAK_LANGS))],
        "formant_ratio": float(rng.uniform(0.92, 1.08)),
        "vibrato_cents": float(rng.uniform(5, 60)),
        "vibrato_rate": float(rng.uniform(4.8, 6.5)),
        "speech_rate": int(rng.integers(120, 171)),
    }
    if realvoice and not plan["female"] and rng.random() < 0.7:
        plan["voice_source"] = "festvox-ru"
    if ttsvoices and "voice_source" not in plan and rng.random() < 0.75:
        if plan["female"]:
            plan["voice_source"] = "hts-slt" if rng.random() < 0.6 else "flite-slt"
        else:
            plan["voice_source"] = "flite-" + FLITE_MALE[rng.integers(len(FLITE_MALE))]
    if hydrogen and rng.random() < 0.5:
        plan["drum_source"] = "hydrogen"
        plan["drum_kit"] = HYDROGEN_KITS[rng.integers(len(HYDROGEN_KITS))]
    elif plan["drum_source"] == "avl":
        plan["drum_kit"] = AVL_KITS[rng.integers(len(AVL_KITS))]
    else:
        plan["drum_kit"] = int(GM_KITS[rng.integers(len(GM_KITS))])
    plan["voice"] = plan["voice_lang"] + (f"+f{rng.integers(1, 6)}" if plan["female"]
                                          else f"+m{rng.integers(1, 8)}")
    return plan


def write_mma(plan, path, song_seed):
    # MMA humanises timing and velocity with Python's random: seed it, or songs differ per run.
    lines = [f"RndSeed {song_seed}", f"Tempo {plan['tempo']}"]
    chords = []
    for bar in range(plan["bars"]):
        if bar % 8 == 0:
            lines.append("Groove " + (plan["verse_groove"] if (bar // 8) % 2 == 0
                                      else plan["chorus_groove"]))
        degree = plan["progression"][bar % 4]
        sym, root, third, fifth = chord_symbol(plan["key"], plan["minor"], degree,
                                               plan["sevenths"] and bar % 2 == 1)
        chords.append((root, third, fifth))
        lines.append(f"{bar + 1} {sym}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return chords


def stem_of(track, channel, program):
    name = (track.name or "").lower()
    if channel == 9:
        return "drums"
    if 32 <= program <= 39 or name.startswith("bass") or name.startswith("walk"):
        return "bass"
    if program in VOX_PROGRAMS:
        return "voxpad"
    return "other"


def split_midi(midi_path, plan, rng, tmp):
    """Returns {stem: midi path} with programs re-drawn; tempo/meta events go into every file."""
    # The program of the drum channel: a GM kit number (Hydrogen and AVL kits are not GM banks).
    gm_kit = plan["drum_kit"] if plan["drum_source"] == "gm" else 0
    mid = mido.MidiFile(midi_path)
    meta_track = mido.MidiTrack()
    per_stem = {}
    for track in mid.tracks:
        notes = [m for m in track if m.type == "note_on"]
        if not notes:
            for m in track:
                meta_track.append(m)
            continue
        channel = notes[0].channel
        progs = [m.program for m in track if m.type == "program_change"]
        program = progs[0] if progs else 0
        stem = stem_of(track, channel, program)
        if stem == "bass":
            new_prog = int(rng.choice([32, 33, 33, 34, 34, 35, 36, 37, 38, 39]))
        elif stem == "other" and rng.random() < 0.6:
            new_prog = int((program // 8) * 8 + rng.integers(8))
            if new_prog in VOX_PROGRAMS:
                new_prog = program
        else:
            new_prog = program
        out = mido.MidiTrack()
        for m in track:
            if m.type == "program_change":
                m = m.copy(program=new_prog if stem != "drums" else m.program)
            if stem == "drums" and hasattr(m, "channel"):
                if plan["drum_source"] == "avl":
                    m = m.copy(channel=15)  # AVL kits are bank 0 program 0: not on channel 10
                    if m.type == "program_change":
                        m = m.copy(program=0)
                elif m.type == "program_change":
                    m = m.copy(program=gm_kit)
            out.append(m)
        if stem == "drums":
            setup = 15 if plan["drum_source"] == "avl" else 9
            prog = gm_kit if plan["drum_source"] == "gm" else 0
            out.insert(0, mido.Message("program_change", channel=setup, program=prog, time=0))
        per_stem.setdefault(stem, []).append(out)
    paths = {}
    for stem, tracks in per_stem.items():
        f = mido.MidiFile(type=1, ticks_per_beat=mid.ticks_per_beat)
        f.tracks.append(meta_track)
        f.tracks.extend(tracks)
        p = os.path.join(tmp, f"{stem}.mid")
        f.save(p)
        paths[stem] = p
    return paths


@functools.lru_cache(maxsize=None)
def hydrogen_kit(name):
    """{gm_note: [(min_vel, max_vel, gain, pan_l, pan_r, sample_path), ...]} of a Hydrogen kit
    (parsed once per process; callers only read it)."""
    root_dir = os.path.join(HYDROGEN, name)
    text = open(os.path.join(root_dir, "drumkit.xml"), encoding="utf-8", errors="replace").read()
    tree = ET.fromstring(re.sub(r'\sxmlns(:\w+)?="[^"]+"', "", text))
    kit = {}

    def num(node, tag, default):
        v = node.findtext(tag)
        try:
            return float(v) if v is not None else default
        except ValueError:
            return default
    for ins in tree.iter("instrument"):
        iname = (ins.findtext("name") or "").lower()
        note = next((n for key, n in DRUM_ROLES if key in iname), None)
        if note is None or ins.findtext("isMuted") == "true":
            continue
        gain = num(ins, "volume", 1.0) * num(ins, "gain", 1.0)
        pan_l, pan_r = num(ins, "pan_L", 1.0), num(ins, "pan_R", 1.0)
        layers = [(num(la, "min", 0.0), num(la, "max", 1.0), gain * num(la, "gain", 1.0),
                   pan_l, pan_r, os.path.join(root_dir, la.findtext("filename")))
                  for la in ins.iter("layer") if la.findtext("filename")]
        if not layers and ins.findtext("filename"):
            layers = [(0.0, 1.0, gain, pan_l, pan_r,
                       os.path.join(root_dir, ins.findtext("filename")))]
        layers = [la for la in layers if os.path.exists(la[5])]
        if layers and note not in kit:
            kit[note] = layers
    return kit


_SAMPLES = {}


def load_sample(path):
    """A sample as float32 stereo at RATE (cached per process)."""
    if path not in _SAMPLES:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        if x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        x = x[:, :2]
        if sr != RATE:
            g = math.gcd(int(sr), RATE)
            x = sps.resample_poly(x, RATE // g, int(sr) // g, axis=0).astype(np.float32)
        _SAMPLES[path] = x
    return _SAMPLES[path]


def render_hydrogen(midi, kit_name, rng):
    """Plays the drum MIDI file through a Hydrogen kit: velocity layer, gain, pan, +-8 ms jitter."""
    kit = hydrogen_kit(kit_name)
    if 36 not in kit and 35 not in kit:
        raise ValueError(f"hydrogen kit {kit_name}: no kick")
    hits, now = [], 0.0
    for m in mido.MidiFile(midi):  # iteration yields delta times in seconds
        now += m.time
        if m.type == "note_on" and m.velocity > 0:
            hits.append((now, m.note, m.velocity / 127.0))
    out = np.zeros((int((now + 4.0) * RATE), 2), np.float32)
    for t, note, vel in hits:
        n = note
        for _ in range(3):
            if n in kit:
                break
            n = DRUM_FALLBACK.get(n, 36 if n < 40 else 42)
        if n not in kit:
            continue
        layers = kit[n]
        layer = next((la for la in layers if la[0] <= vel <= la[1]), layers[-1])
        x = load_sample(layer[5])
        start = max(0, int((t + rng.uniform(-0.008, 0.008)) * RATE))
        end = min(len(out), start + len(x))
        amp = layer[2] * vel ** 1.5
        out[start:end, 0] += x[:end - start, 0] * amp * layer[3]
        out[start:end, 1] += x[:end - start, 1] * amp * layer[4]
    return out


def render_midi(midi, soundfont, out_wav):
    subprocess.run(["fluidsynth", "-ni", "-q", "-F", out_wav, "-O", "float", "-T", "wav",
                    "-r", str(RATE), "-R", "0", "-C", "0", "-g", "0.5", soundfont, midi],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x, sr = sf.read(out_wav, dtype="float32", always_2d=True)
    assert sr == RATE
    return x


def melody(plan, chords, rng):
    """Chord-aware 2-bar phrases. Returns [[(t0, t1, midi), ...], ...] in seconds."""
    beat = 60.0 / plan["tempo"]
    lo, hi = (55, 72) if plan["female"] else (45, 65)
    scale = MINOR if plan["minor"] else MAJOR
    pitches = [p for p in range(lo, hi + 1) if (p - plan["key"]) % 12 in scale]
    phrases = []
    current = pitches[len(pitches) // 2]
    for start_bar in range(0, plan["bars"], 2):
        if rng.random() < 0.15:
            continue
        notes = []
        for onset, length in RHYTHMS[rng.integers(len(RHYTHMS))]:
            t = (start_bar * 4 + onset) * beat
            bar = min(start_bar + int(onset // 4), plan["bars"] - 1)
            if onset % 2 == 0:
                root, third, fifth = chords[bar]
                tones = [p for p in pitches if (p - root) % 12 in (0, third, fifth)]
                tones = [p for p in tones if abs(p - current) <= 5] or tones
                current = int(rng.choice(tones))
            else:
                idx = pitches.index(min(pitches, key=lambda p: abs(p - current)))
                idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(pitches) - 1))
                current = pitches[idx]
            notes.append((t, t + length * beat * rng.uniform(0.85, 1.0), current))
        phrases.append(notes)
    return phrases


def write_tier(path, cls, xmax, points):
    with open(path, "w") as f:
        f.write(f'File type = "ooTextFile short"\n"{cls}"\n0\n{xmax:.6f}\n{len(points)}\n')
        for t, v in points:
            f.write(f"{t:.6f}\n{v:.6f}\n")


def bandwidth_extend(x, sr_src, rng):
    """Fills the empty octave above a band-limited voice's Nyquist (training-data.md §5.5)."""
    fc = 0.95 * sr_src / 2
    if fc >= 0.45 * RATE:
        return x
    band = sps.sosfilt(sps.butter(4, [fc / 2, 0.97 * fc], "bandpass", fs=RATE, output="sos"), x)
    analytic = sps.hilbert(band)
    t = np.arange(len(x)) / RATE
    up = np.real(analytic * np.exp(2j * np.pi * fc / 2 * t))
    up += 0.35 * np.real(analytic * np.exp(2j * np.pi * fc * t))
    up = sps.sosfilt(sps.butter(4, [fc, min(2 * fc, 0.49 * RATE)], "bandpass", fs=RATE,
                                output="sos"), up)
    return x + up * 10 ** (rng.uniform(-1, 5) / 20)


@functools.lru_cache(maxsize=None)
def festvox_files():
    return tuple(sorted(glob.glob(f"{FESTVOX_RU}/ru_*.wav")))


def real_speech(rng, notes):
    """A stretch of a real recorded utterance (festvox-ru, one male speaker, 16 kHz) about as
    long as the phrase has syllables: real voice timbre, breath and articulation for PSOLA."""
    files = festvox_files()
    x, sr = sf.read(files[rng.integers(len(files))], dtype="float64")
    length = int(float(np.clip(0.26 * len(notes), 0.7, 3.0)) * sr)
    start = int(rng.integers(0, max(len(x) - length, 1)))
    return x[start:start + length], sr


def sing(plan, phrases, rng, tmp, total, seed):
    """Vocal stem (mono): espeak-ng speech, real recorded speech or a corpus-based TTS voice
    (plan "voice_source"), turned into the melody by Praat PSOLA."""
    vocal = np.zeros(total, dtype=np.float64)
    bases, placements = [], []
    for i, notes in enumerate(phrases):
        base = os.path.join(tmp, f"p{i}")
        source = plan.get("voice_source", "espeak-ng")
        if source == "festvox-ru":
            speech, sr = real_speech(rng, notes)
        else:
            words = " ".join(SYLLABLES[rng.integers(len(SYLLABLES))] for _ in notes)
            raw = base + "_raw.wav"
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
            if source == "hts-slt":  # text2wave reads the text from stdin
                subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", raw],
                               input=words.encode(), **quiet)
            elif source.startswith("flite-"):
                subprocess.run(["flite", "-voice", source[len("flite-"):], "-t", words, "-o", raw],
                               **quiet)
            else:
                subprocess.run(["espeak-ng", "-v", plan["voice"], "-s", str(plan["speech_rate"]),
                                "-w", raw, words], **quiet)
            speech, sr = sf.read(raw, dtype="float64")
        env = np.abs(speech) > 0.02 * np.max(np.abs(speech) + 1e-9)
        idx = np.nonzero(env)[0]
        if len(idx) < sr // 10:
            continue
        speech = speech[max(idx[0] - 200, 0): idx[-1] + 200]
        # Formant shift: declare a different sample rate; PSOLA restores pitch and duration.
        r = plan["formant_ratio"]
        sr_decl = int(round(sr * r))
        sf.write(base + ".wav", speech, sr_decl)
        src_dur = len(speech) / sr_decl
        t0, t1 = notes[0][0], notes[-1][1]
        factor = (t1 - t0) / src_dur
        write_tier(base + ".DurationTier", "DurationTier", src_dur, [(0.0, factor)])
        points = []
        for n, (a, b, p) in enumerate(notes):
            f0 = 440.0 * 2 ** ((p - 69) / 12)
            detune = rng.uniform(-6, 6)
            for t in np.arange(a, b, 0.004):
                since = t - a
                glide = -70 * np.exp(-since / 0.045)  # scoop into the note
                vib = 0.0
                if b - a > 0.35 and since > 0.18:
                    fade = min((since - 0.18) / 0.25, 1.0)
                    vib = plan["vibrato_cents"] * fade * np.sin(2 * np.pi * plan["vibrato_rate"] *
                                                               since)
                cents = glide + vib + detune
                points.append(((t - t0) / factor, f0 * 2 ** (cents / 1200)))
        write_tier(base + ".PitchTier", "PitchTier", src_dur, points)
        bases.append(base)
        placements.append(t0)
    if not bases:
        return vocal
    listfile = os.path.join(tmp, "list.txt")
    with open(listfile, "w") as f:
        f.write("\n".join(bases) + "\n")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sing.praat")
    subprocess.run(["praat", "--run", script, listfile, str(seed)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for base, t0 in zip(bases, placements):
        y, sr = sf.read(base + "_sung.wav", dtype="float64")
        y = sps.resample_poly(y, RATE, sr)
        y = bandwidth_extend(y, sr / plan["formant_ratio"], rng)
        s = int(t0 * RATE)
        n = min(len(y), total - s)
        if n > 0:
            vocal[s:s + n] += y[:n]
    return vocal


def biquad_peak(fc, gain_db, q):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * fc / RATE
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.array(b) / den[0], np.array(den) / den[0]


def compress(x, rng):
    thr = 10 ** (rng.uniform(-24, -14) / 20)
    ratio = rng.uniform(2, 5)
    mono = np.mean(x ** 2, axis=1)
    env = np.sqrt(sps.lfilter([0.002], [1, -0.998], mono) + 1e-12)
    gain = np.where(env > thr, (env / thr) ** (1 / ratio - 1), 1.0)
    return x * gain[:, None]


def reverb(x, rng, wet, t60=(0.4, 2.2), bright=False):
    t60 = rng.uniform(*t60)
    n = int(t60 * RATE)
    t = np.arange(n) / RATE
    ir = rng.standard_normal((n, 2)) * np.exp(-6.9 * t / t60)[:, None]
    if not bright:  # highs die faster than lows in a room
        hi = sps.sosfilt(sps.butter(2, 2000, "highpass", fs=RATE, output="sos"), ir, axis=0)
        ir = ir - hi + hi * np.exp(-6.9 * t / t60)[:, None]
    pre = int(rng.uniform(0.005, 0.03) * RATE)
    ir = np.concatenate([np.zeros((pre, 2)), ir])
    ir /= np.sqrt(np.sum(ir ** 2) / 2)
    out = np.stack([sps.fftconvolve(x[:, c], ir[:, c])[:len(x)] for c in range(2)], axis=1)
    return (1 - wet) * x + wet * out


def pan(mono, p):
    a = (p + 1) * np.pi / 4
    return np.stack([mono * np.cos(a), mono * np.sin(a)], axis=1)


def process_stem(name, x, rng):
    if name == "vocals":
        x = sps.sosfilt(sps.butter(2, rng.uniform(70, 130), "highpass", fs=RATE, output="sos"),
                        x, axis=0)
        b, a = biquad_peak(rng.uniform(2500, 5000), rng.uniform(0, 5), 1.0)
        x = sps.lfilter(b, a, x, axis=0)
        x = compress(x, rng)
        x = reverb(x, rng, rng.uniform(0.1, 0.35))
    else:
        b, a = biquad_peak(rng.uniform(100, 8000), rng.uniform(-6, 6), rng.uniform(0.5, 2))
        x = sps.lfilter(b, a, x, axis=0)
        if rng.random() < 0.5:
            x = compress(x, rng)
        if rng.random() < 0.5:
            x = reverb(x, rng, rng.uniform(0.05, 0.3))
    return x


RMS_DB = {"vocals": (-17, -13), "drums": (-20, -15), "bass": (-21, -16), "other": (-21, -15)}


def make_song(index, args):
    out_dir = os.path.join(args.out, f"{args.split}_{index:05d}")
    if os.path.exists(os.path.join(out_dir, "meta.json")):
        return
    song_seed = args.seed * 100003 + index + (7919 if args.split == "test" else 0)
    rng = np.random.default_rng(song_seed)
    soundfonts = SOUNDFONTS + [MUSESCORE] * 2 if args.musescore else SOUNDFONTS
    plan = plan_song(rng, args.split, soundfonts, args.hydrogen, args.realvoice,
                     args.ttsvoices)
    tmp = tempfile.mkdtemp(prefix="stemsphere-gen-")
    try:
        chords = write_mma(plan, os.path.join(tmp, "song.mma"), song_seed)
        subprocess.run(["mma", os.path.join(tmp, "song.mma"), "-f", os.path.join(tmp, "song.mid")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        paths = split_midi(os.path.join(tmp, "song.mid"), plan, rng, tmp)
        stems = {}
        for stem, midi in paths.items():
            sfont = plan["soundfont"][stem]
            if stem == "drums" and plan["drum_source"] == "hydrogen":
                stems[stem] = render_hydrogen(midi, plan["drum_kit"], rng)
                continue
            if stem == "drums" and plan["drum_source"] == "avl":
                sfont = plan["drum_kit"]
            stems[stem] = render_midi(midi, sfont, os.path.join(tmp, f"{stem}.wav"))
        total = max(len(v) for v in stems.values()) if stems else RATE
        total = min(total, int((plan["bars"] * 4 * 60 / plan["tempo"] + 2.0) * RATE))
        phrases = melody(plan, chords, rng)
        voc = sing(plan, phrases, rng, tmp, total, song_seed)
        vocals = pan(voc, rng.uniform(-0.15, 0.15))
        if rng.random() < 0.3:  # double track, late and panned
            d = int(rng.uniform(0.015, 0.03) * RATE)
            dbl = np.concatenate([np.zeros(d), voc[:-d]]) * 0.5
            vocals += pan(dbl, rng.choice([-0.7, 0.7]))

        def fit(x):
            y = np.zeros((total, 2))
            n = min(total, len(x))
            y[:n] = x[:n]
            return y
        vocals = fit(vocals)
        if "voxpad" in stems:
            vocals += fit(stems.pop("voxpad")) * 0.5
        final = {"vocals": vocals}
        for stem in ("drums", "bass", "other"):
            final[stem] = fit(stems[stem]) if stem in stems else np.zeros((total, 2))
        levels = {}
        for name, x in final.items():
            x = process_stem(name, x, rng)
            rms = np.sqrt(np.mean(x ** 2))
            if rms > 1e-6:
                target = 10 ** (rng.uniform(*RMS_DB[name]) / 20)
                x = x * target / rms
            final[name] = x
            levels[name] = float(20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-12))
        mix = sum(final.values())
        gain = min(1.0, 10 ** (-1 / 20) / (np.max(np.abs(mix)) + 1e-9))
        os.makedirs(out_dir, exist_ok=True)
        for name, x in final.items():
            sf.write(os.path.join(out_dir, f"{name}.flac"), (x * gain).astype(np.float32), RATE,
                     subtype="PCM_16")
        plan["phrases"] = phrases
        plan["levels_dbfs"] = levels
        plan["seconds"] = total / RATE
        with open(os.path.join(out_dir, "meta.json"), "w") as f:
            json.dump(plan, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else o)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--songs", type=int, default=100)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--split", choices=["train", "test"], default="train")
    ap.add_argument("--musescore", action="store_true",
                    help="also draw instruments and kits from MuseScore General")
    ap.add_argument("--hydrogen", action="store_true",
                    help="half the drum stems from the recorded kits of hydrogen-drumkits")
    ap.add_argument("--realvoice", action="store_true",
                    help="70 %% of the male vocal lines from real recorded speech (festvox-ru)")
    ap.add_argument("--ttsvoices", action="store_true",
                    help="75 %% of the other vocal lines from festival HTS slt and flite voices")
    args = ap.parse_args()
    if args.musescore and not os.path.exists(MUSESCORE):
        sys.exit(f"{MUSESCORE} missing: bash models/setup.sh")
    if args.hydrogen and not os.path.isdir(HYDROGEN):
        sys.exit(f"{HYDROGEN} missing: bash models/setup.sh")
    if args.realvoice and not os.path.isdir(FESTVOX_RU):
        sys.exit(f"{FESTVOX_RU} missing: bash models/setup.sh")
    if args.ttsvoices and not (os.path.isdir(HTS_SLT) and shutil.which("flite")):
        sys.exit(f"{HTS_SLT} or flite missing: bash models/setup.sh")
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.first, args.first + args.songs):
        try:
            make_song(i, args)
            log(f"song {args.split} {i} ok")
        except (subprocess.CalledProcessError, ValueError, KeyError, IndexError,
                RuntimeError) as e:
            log(f"song {args.split} {i} failed: {e}")


if __name__ == "__main__":
    main()
