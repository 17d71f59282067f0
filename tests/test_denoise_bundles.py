"""Specification of the denoise job's bundles: how files are packed, cut into pieces, and fail alone."""

import json

import numpy as np
import pytest
import soundfile as sf

from ansray.denoise import bundles
from ansray.denoise.bundles import Bundle, read_bundles
from ansray.io import list_audio
from ansray.segments import SegmentOptions

OPTIONS = SegmentOptions(segment_seconds=4.0, overlap_seconds=0.5, batch_size=1)


def tasks_for(folder) -> dict:
    refs = list_audio(str(folder))
    files = [{"file_id": i, "ref": {"uri": r.uri, "key": r.key, "size": r.size, "stamp": r.stamp},
              "output": str(folder / "out" / r.key)} for i, r in enumerate(refs)]
    return {"files": np.array([json.dumps(files)])}


def read(folder, capacity=32):
    out = []
    for batch in read_bundles(tasks_for(folder), options=OPTIONS, capacity=capacity, output_format="same",
                              mixdown=False, storage_options=None):
        out += [Bundle.from_row(batch["audio"][i], batch["entries"][i]) for i in range(len(batch["entries"]))]
    return out


def test_short_files_share_a_bundle_and_a_long_one_is_cut_into_primed_pieces(tmp_path):
    rng = np.random.default_rng(0)
    for name, seconds in (("a.wav", 2.0), ("b.wav", 3.0), ("long.wav", 40.0)):
        sf.write(tmp_path / name, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    found = read(tmp_path, capacity=4)
    whole = [e for b in found for e in b.entries if e.pieces == 1]
    assert sorted(e.file_plan().ref.key for e in whole) == ["a.wav", "b.wav"]
    assert any(len(b.entries) == 2 for b in found), "two short files fit one bundle"
    pieces = [e for b in found for e in b.entries if e.pieces > 1]
    assert [e.piece for e in pieces] == list(range(pieces[0].pieces))
    assert not pieces[0].primed and all(e.primed and e.count <= 4 for e in pieces[1:])
    count = pieces[0].file_plan().segments.count
    # Each piece after the first repeats the previous one's last segment; together they cover every segment.
    covered = {e.first + k for e in pieces for k in range(1 if e.primed else 0, e.count)}
    assert covered == set(range(count))


def test_a_storage_failure_on_one_file_is_that_files_error_of_kind_system(tmp_path, monkeypatch):
    botocore = pytest.importorskip("botocore.exceptions")
    rng = np.random.default_rng(1)
    for name in ("good.wav", "unreachable.wav"):
        sf.write(tmp_path / name, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    real_info = bundles.audio_info

    def flaky(uri, storage_options=None):
        if uri.endswith("unreachable.wav"):
            raise botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return real_info(uri, storage_options)

    monkeypatch.setattr(bundles, "audio_info", flaky)
    entries = {e.file_id: e for b in read(tmp_path) for e in b.entries}
    failed = [e for e in entries.values() if e.error]
    (bad,) = failed
    assert bad.error_kind == "system" and "unreachable.wav" in bad.error and "EndpointConnectionError" in bad.error
    assert len(entries) == 2 and sum(e.count for e in entries.values() if not e.error) > 0
