"""A small SFZ reader and one-shot sample player for the evaluation sets (issue 11).

No SFZ player is packaged in Debian bookworm, and the evaluation only needs one-shot drum hits
and guitar notes, so this reads the subset of SFZ the MuldjordKit uses:
  - `#define $NAME value` (applied to everything after it, redefinitions allowed) and
    `#include "path"` (relative to the top-level .sfz file's folder, as the SFZ spec says);
  - headers <control>, <global>, <master>, <group>, <region>; a region inherits the opcodes of the
    current global, master and group headers;
  - `key`, `lokey`/`hikey`, `lovel`/`hivel`, `seq_length`/`seq_position` (round robin per key),
    `amp_velcurve_N` points, `sample`.
Values with spaces and the CC-driven opcodes (mixing, panning, choke groups) are not read: the
renderer mixes the microphones itself (drumkit.py).
"""

import os
import re

_TOKEN = re.compile(
    r'#include\s+"(?P<inc>[^"]+)"'
    r"|#define\s+(?P<dname>\$\w+)\s+(?P<dval>\S+)"
    r"|<(?P<header>\w+)>"
    r"|(?P<op>[A-Za-z0-9_$]+)=(?P<val>\S+)"
)
_VAR = re.compile(r"\$\w+")
_COMMENT = re.compile(r"//[^\n]*")


def _substitute(text, defines):
    return _VAR.sub(lambda m: defines.get(m.group(0), m.group(0)), text)


def parse_sfz(path, read_text=None):
    """Returns the list of regions (dicts of opcode -> string) of the SFZ file at `path`.

    read_text(path) -> str reads a file (default: the file system); tests pass their own."""
    if read_text is None:

        def read_text(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                return f.read()

    base = os.path.dirname(path)
    defines = {}
    levels = {"global": {}, "master": {}, "group": {}}
    regions = []
    current = {"kind": None, "ops": None}

    def close_region():
        if current["kind"] == "region":
            merged = {}
            for level in ("global", "master", "group"):
                merged.update(levels[level])
            merged.update(current["ops"])
            regions.append(merged)
        current["kind"] = None

    def walk(file_path, depth):
        if depth > 32:
            raise ValueError("sfz: #include nested too deeply at " + file_path)
        text = _COMMENT.sub("", read_text(file_path))
        for m in _TOKEN.finditer(text):
            if m.group("inc") is not None:
                walk(os.path.normpath(os.path.join(base, m.group("inc"))), depth + 1)
            elif m.group("dname") is not None:
                defines[m.group("dname")] = m.group("dval")
            elif m.group("header") is not None:
                close_region()
                h = m.group("header")
                if h == "global":
                    levels["global"], levels["master"], levels["group"] = {}, {}, {}
                    current.update(kind="global", ops=levels["global"])
                elif h == "master":
                    levels["master"], levels["group"] = {}, {}
                    current.update(kind="master", ops=levels["master"])
                elif h == "group":
                    levels["group"] = {}
                    current.update(kind="group", ops=levels["group"])
                elif h == "region":
                    current.update(kind="region", ops={})
                else:  # <control>, <curve>, <effect>, ...: not used here
                    current.update(kind=h, ops={})
            else:
                if current["ops"] is not None:
                    op = _substitute(m.group("op"), defines)
                    current["ops"][op] = _substitute(m.group("val"), defines)

    walk(path, 0)
    close_region()
    return regions


NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def note_number(value):
    """SFZ key value: a MIDI number or a name such as c4, db4, f#3 (c4 = 60)."""
    v = value.strip().lower()
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    m = re.fullmatch(r"([a-g])([#b]?)(-?\d+)", v)
    if not m:
        raise ValueError("sfz: bad key " + value)
    n = NOTE_NAMES[m.group(1)] + {"#": 1, "b": -1, "": 0}[m.group(2)]
    return n + 12 * (int(m.group(3)) + 1)


def _key_range(region):
    if "key" in region:
        k = note_number(region["key"])
        return k, k
    return note_number(region.get("lokey", "0")), note_number(region.get("hikey", "127"))


def velocity_gain(region, velocity):
    """Amplitude for a velocity: linear between the amp_velcurve_N points (with (0, 0) and
    (127, 1) where not given, as the SFZ spec defines); without points SFZ's default
    amp_veltrack=100 curve (velocity/127)^2."""
    points = {int(k[len("amp_velcurve_"):]): float(v) for k, v in region.items()
              if k.startswith("amp_velcurve_")}
    if not points:
        return (velocity / 127.0) ** 2
    points.setdefault(0, 0.0)
    points.setdefault(127, 1.0)
    xs = sorted(points)
    for a, b in zip(xs, xs[1:]):
        if a <= velocity <= b:
            if b == a:
                return points[b]
            return points[a] + (points[b] - points[a]) * (velocity - a) / (b - a)
    return points[xs[-1]]


class RegionSelector:
    """Picks the regions a note-on plays: key and velocity ranges, then the round robin
    (`seq_position` of `seq_length`) with one counter per key, advanced once per note-on."""

    def __init__(self, regions):
        self.regions = regions
        self.counters = {}

    def select(self, key, velocity):
        hits = []
        for r in self.regions:
            lo, hi = _key_range(r)
            if not lo <= key <= hi:
                continue
            if not int(r.get("lovel", "0")) <= velocity <= int(r.get("hivel", "127")):
                continue
            hits.append(r)
        count = self.counters.get(key, 0)
        self.counters[key] = count + 1
        chosen = []
        for r in hits:
            length = int(r.get("seq_length", "1"))
            if (count % length) + 1 == int(r.get("seq_position", "1")):
                chosen.append(r)
        return chosen
