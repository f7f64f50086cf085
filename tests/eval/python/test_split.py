"""The dev/test split (bench/quality/split.json) keeps its promises: every choice is made on
dev, test stays unseen, so no clip, song, performance or package may sit in both halves."""
import collections
import re

import eval_sets

DOC = eval_sets.load_split()
CLIPS = DOC["clips"]


def test_ids_are_unique_and_every_clip_is_dev_or_test():
    ids = [c["id"] for c in CLIPS]
    assert len(ids) == len(set(ids))
    assert {c["split"] for c in CLIPS} == {"dev", "test"}
    assert all(c["set"] in eval_sets.BUILDERS for c in CLIPS)


def test_no_recording_in_both_halves():
    # a song's excerpts, a track, a Groove performance: the source recording is the path
    halves = collections.defaultdict(set)
    for c in CLIPS:
        halves[c["path"] + "#" + str(c.get("seed", ""))].add(c["split"])
    assert all(len(s) == 1 for s in halves.values())


def test_a_package_or_band_is_never_split():
    by = collections.defaultdict(set)
    for c in CLIPS:
        if c["set"] in ("instrumentals", "fretsonfire"):
            by[c["source"]].add(c["split"])
    assert all(len(s) == 1 for s in by.values())
    assert by["debian:fretsonfire-songs-sectoid"] == {"dev"}
    assert by["debian:fretsonfire-songs-muldjord"] == {"test"}


def test_groove_performances_follow_the_dataset_split():
    for c in CLIPS:
        if c["set"] == "drums-alone":
            assert c["split"] == ("test" if c["groove_split"] == "test" else "dev")
            assert re.match(r"groove/drummer\d+/", c["path"])


def test_the_agreed_assignment():
    split = {c["id"]: c["split"] for c in CLIPS}
    assert split["musdb/Al James - Schoolboy Facination"] == "dev"
    assert split["musdb/Music Delta - 80s Rock"] == "test"
    assert split["musdb/Georgia Wonder - Siren"] == "test"
    assert all(c["split"] == "test" for c in CLIPS if c["set"] == "speech-alone")
    # every set that has a dev part also has a test part (speech is test only)
    sets = collections.defaultdict(set)
    for c in CLIPS:
        sets[c["set"]].add(c["split"])
    assert all(s == {"dev", "test"} for k, s in sets.items() if k != "speech-alone")


def test_every_source_is_pinned():
    pinned = DOC["sources"]
    for c in CLIPS:
        for part in re.findall(r"(?:github|debian):\S+|shared/\S+", c["source"]):
            assert part in pinned, part
    for k, v in pinned.items():
        if k.startswith("github:"):
            assert re.fullmatch(r"[0-9a-f]{40}", v)
