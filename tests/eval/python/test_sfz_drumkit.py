"""The SFZ reader and the MIDI drum renderer that build the drums-alone set."""
import os
import struct

import numpy as np
import pytest

import drumkit
import sfz

KIT = {
    "kit/Stereo/kit.sfz": '#include "../Data/macro.txt"\n'
                          '<global> loop_mode=one_shot\n'
                          '<master> #include "../Data/snare.txt"\n',
    "kit/Data/macro.txt": "#define $lo1 1   #define $hi1 63\n#define $lo2 64 #define $hi2 127\n"
                          "#define $mic OH // comment with = signs\n",
    "kit/Data/snare.txt": "#define $instr Snare\n<group> key=38\n"
                          "<region> lovel=$lo1 hivel=$hi1 amp_velcurve_$hi1=1 "
                          "sample=$instr/1-$instr-$mic.flac seq_length=2 seq_position=1\n"
                          "<region> lovel=$lo1 hivel=$hi1 amp_velcurve_$hi1=1 "
                          "sample=$instr/2-$instr-$mic.flac seq_length=2 seq_position=2\n"
                          "<region> lovel=$lo2 hivel=$hi2 sample=$instr/3-$instr-$mic.flac\n"
                          "<group> lokey=c4 hikey=d4\n<region> sample=tone.flac\n",
}


def _regions():
    return sfz.parse_sfz("kit/Stereo/kit.sfz", lambda p: KIT[os.path.normpath(p)])


def test_defines_includes_and_inheritance():
    regions = _regions()
    assert len(regions) == 4
    assert regions[0]["sample"] == "Snare/1-Snare-OH.flac"
    assert regions[0]["key"] == "38" and regions[0]["loop_mode"] == "one_shot"
    assert regions[0]["amp_velcurve_63"] == "1"
    assert "key" not in regions[3]  # a new <group> drops the previous group's opcodes


def test_region_selection_by_velocity_and_round_robin():
    sel = sfz.RegionSelector(_regions())
    soft = [sel.select(38, 40)[0]["sample"] for _ in range(3)]
    assert soft == ["Snare/1-Snare-OH.flac", "Snare/2-Snare-OH.flac", "Snare/1-Snare-OH.flac"]
    assert [r["sample"] for r in sel.select(38, 100)] == ["Snare/3-Snare-OH.flac"]
    assert sel.select(38, 63)[0]["sample"].startswith("Snare/")  # hivel is inclusive
    assert [r["sample"] for r in sel.select(61, 100)] == ["tone.flac"]  # c4..d4 = 60..62
    assert sel.select(40, 100) == []


def test_note_names():
    assert sfz.note_number("c4") == 60
    assert sfz.note_number("db4") == 61
    assert sfz.note_number("f#3") == 54
    assert sfz.note_number("36") == 36
    with pytest.raises(ValueError):
        sfz.note_number("h2")


def test_velocity_gain_follows_the_curve_points():
    r = {"amp_velcurve_63": "1"}
    assert sfz.velocity_gain(r, 63) == pytest.approx(1.0)
    assert sfz.velocity_gain(r, 21) == pytest.approx(1 / 3)
    assert sfz.velocity_gain(r, 100) == pytest.approx(1.0)
    assert sfz.velocity_gain({}, 127) == pytest.approx(1.0)
    assert sfz.velocity_gain({}, 64) == pytest.approx((64 / 127) ** 2)


def _varlen(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def _midi(path):
    """Format-0 file, 480 ticks/beat: note 36 at beat 0, a tempo change to 60 bpm at beat 1,
    note 38 (running status) at beat 2 with velocity 90."""
    ev = b""
    ev += _varlen(0) + b"\xff\x51\x03" + (500000).to_bytes(3, "big")  # 120 bpm
    ev += _varlen(0) + b"\x99\x24\x64"
    ev += _varlen(480) + b"\xff\x51\x03" + (1000000).to_bytes(3, "big")  # 60 bpm from 0.5 s
    ev += _varlen(0) + b"\x89\x24\x00"
    ev += _varlen(480) + b"\x99\x26\x5a"
    ev += _varlen(10) + b"\x26\x00"  # running status, velocity 0 = note off
    ev += _varlen(0) + b"\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480))
        f.write(b"MTrk" + struct.pack(">I", len(ev)) + ev)


def test_midi_reader_handles_tempo_changes_and_running_status(tmp_path):
    p = str(tmp_path / "g.mid")
    _midi(p)
    notes = drumkit._read_midi_notes_plain(p)
    assert [(round(t, 6), n, v) for t, n, v in notes] == [(0.0, 36, 100), (1.5, 38, 90)]
    if drumkit.mido is not None:  # the packaged reader agrees
        assert [(round(t, 6), n, v) for t, n, v in drumkit.read_midi_notes(p)] == \
            [(0.0, 36, 100), (1.5, 38, 90)]


class FakeKit:
    def __init__(self):
        self.selector = sfz.RegionSelector([
            {"key": "38", "sample": "Snare/1-Snare-OHL.flac"},
            {"key": "38", "sample": "Snare/1-Snare-OHR.flac"},
            {"key": "38", "sample": "Snare/1-Snare-Trigger.flac"}])

    def sample(self, rel):
        s = np.zeros(100, dtype=np.float32)
        s[0] = 1.0
        return s


def test_render_places_each_microphone_at_the_hit_time_and_side():
    out = drumkit.render(FakeKit(), [(1.25, 40, 127), (0.5, 99, 127)], start=1.0, seconds=1.0)
    assert out.shape == (44100, 2)
    at = int(0.25 * 44100)
    nz = np.flatnonzero(np.abs(out).sum(axis=1))
    assert nz.tolist() == [at]  # one hit (note 40 = snare rim), unknown note 99 ignored
    gain = drumkit.MIC_MIX["OHL"][0] * (127 / 127) ** 2
    assert out[at, 0] == pytest.approx(gain, rel=1e-5)  # OHL hard left, OHR hard right,
    assert out[at, 1] == pytest.approx(gain, rel=1e-5)  # the trigger mic not mixed
