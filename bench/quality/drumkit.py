"""Real drums played alone for the evaluation: Groove MIDI performances (human timing and
velocities) through the multi-microphone MuldjordKit samples (sfz.py reads the kit).

Every hit plays the kit's recording of that hit at each microphone (close mics with their bleed,
overheads, room), mixed to stereo with a fixed, ordinary balance: close mics near the centre at
their usual pan positions, overheads and room mics hard left/right. Hi-hat choking and the kit's
CC-driven mixer are not modelled (a one-shot plays to its end)."""

import os

import numpy as np

try:
    import mido
except ImportError:  # the renderer reads MIDI itself when python3-mido is missing
    mido = None

import sfz

RATE = 44100

# Roland TD-11 notes of the Groove MIDI Dataset (groove/README) -> MuldjordKit keys
# (Data/keymap.txt): kick, snare head/rim, cross-stick, toms, hi-hat, crashes, ride.
GROOVE_TO_KIT = {
    36: 36, 38: 38, 40: 38, 37: 37,
    48: 48, 50: 48, 45: 47, 47: 47, 43: 41, 58: 41,
    42: 42, 22: 42, 44: 42, 46: 46, 26: 46,
    49: 49, 55: 49, 57: 57, 52: 57, 51: 51, 59: 51, 53: 53,
}

# microphone -> (gain, pan in [-1, 1]); overheads and room mics carry the stereo image.
MIC_MIX = {
    "KdrumL": (0.7, 0.0), "KdrumR": (0.7, 0.0),
    "Snare_top": (0.6, -0.05), "Snare_bottom": (0.25, -0.05),
    "Tom1": (0.4, -0.3), "Tom2": (0.4, 0.05), "Tom3": (0.4, 0.3), "Tom4": (0.45, 0.5),
    "Hihat": (0.35, -0.5), "RideL": (0.3, -0.6), "RideR": (0.3, 0.6),
    "OHL": (0.6, -1.0), "OHR": (0.6, 1.0), "AmbL": (0.4, -1.0), "AmbR": (0.4, 1.0),
}


def read_midi_notes(path):
    """[(seconds, note, velocity)] of the note-ons (velocity > 0) of a MIDI file."""
    if mido is not None:
        notes, t = [], 0.0
        for msg in mido.MidiFile(path):
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                notes.append((t, msg.note, msg.velocity))
        return notes
    return _read_midi_notes_plain(path)


def _read_midi_notes_plain(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"MThd":
        raise ValueError("not a MIDI file: " + path)
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise ValueError("SMPTE time division not supported: " + path)
    pos, events = 14, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        chunk, pos = data[pos + 8:pos + 8 + size], pos + 8 + size
        i, tick, status = 0, 0, 0
        while i < len(chunk):
            delta = 0
            while True:
                b = chunk[i]; i += 1
                delta = (delta << 7) | (b & 0x7F)
                if b < 0x80:
                    break
            tick += delta
            if chunk[i] >= 0x80:
                status = chunk[i]; i += 1
            if status == 0xFF:
                kind = chunk[i]; i += 1
                length = 0
                while True:
                    b = chunk[i]; i += 1
                    length = (length << 7) | (b & 0x7F)
                    if b < 0x80:
                        break
                if kind == 0x51:
                    events.append((tick, "tempo", int.from_bytes(chunk[i:i + 3], "big"), 0))
                i += length
            elif status in (0xF0, 0xF7):
                length = 0
                while True:
                    b = chunk[i]; i += 1
                    length = (length << 7) | (b & 0x7F)
                    if b < 0x80:
                        break
                i += length
            else:
                nbytes = 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
                args = chunk[i:i + nbytes]; i += nbytes
                if status & 0xF0 == 0x90 and args[1] > 0:
                    events.append((tick, "on", args[0], args[1]))
    events.sort(key=lambda e: (e[0], e[1] != "tempo"))
    notes, tempo, last_tick, seconds = [], 500000, 0, 0.0
    for tick, kind, a, b in events:
        seconds += (tick - last_tick) * tempo / 1e6 / division
        last_tick = tick
        if kind == "tempo":
            tempo = a
        else:
            notes.append((seconds, a, b))
    return notes


class Kit:
    """The MuldjordKit from an extracted snapshot folder (the one holding Stereo/ and Samples/)."""

    def __init__(self, kit_dir):
        self.kit_dir = kit_dir
        self.sfz_path = os.path.join(kit_dir, "Stereo", "DrumGizmo MuldjordKit.sfz")
        self.regions = sfz.parse_sfz(self.sfz_path)
        self.selector = sfz.RegionSelector(self.regions)
        self.cache = {}

    def sample(self, rel):
        if rel not in self.cache:
            import soundfile as sf
            path = os.path.normpath(os.path.join(self.kit_dir, "Samples", rel))
            data, rate = sf.read(path, dtype="float32", always_2d=True)
            if rate != RATE:
                raise ValueError("%s: rate %d, expected %d" % (path, rate, RATE))
            self.cache[rel] = data[:, 0]
        return self.cache[rel]


def mic_of(sample_path):
    return os.path.basename(sample_path).rsplit("-", 1)[-1].rsplit(".", 1)[0]


def render(kit, notes, start, seconds, lead_in=2.0):
    """Stereo float32 (N, 2) of `seconds` from `start` (notes from `start - lead_in` on, so
    ringing hits from before the excerpt are present)."""
    n = int(round(seconds * RATE))
    out = np.zeros((n + RATE * 8, 2), dtype=np.float64)
    for t, note, vel in notes:
        if t < start - lead_in or t >= start + seconds:
            continue
        key = GROOVE_TO_KIT.get(note)
        if key is None:
            continue
        at = int(round((t - start) * RATE))
        for region in kit.selector.select(key, vel):
            rel = region.get("sample", "")
            mic = mic_of(rel)
            if mic not in MIC_MIX or rel.startswith("*"):
                continue
            gain, pan = MIC_MIX[mic]
            s = kit.sample(rel) * (gain * sfz.velocity_gain(region, vel))
            lo = max(0, -at)
            if lo >= len(s):
                continue
            a = max(at, 0)
            m = min(len(s) - lo, len(out) - a)
            theta = (pan + 1) * np.pi / 4
            out[a:a + m, 0] += s[lo:lo + m] * np.cos(theta)
            out[a:a + m, 1] += s[lo:lo + m] * np.sin(theta)
    return out[:n].astype(np.float32)
