"""fairseq_layerdrop.result_files: result files are replaced all at once or left as they were."""
import json
import os

import pytest

from fairseq_layerdrop import result_files


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "sweep.json"
    out.write_text("old")
    result_files.write_json(out, {"rows": [1, 2]})
    assert json.loads(out.read_text()) == {"rows": [1, 2]} and out.read_text().endswith("}\n")
    assert os.stat(out).st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    out = tmp_path / "sweep.csv"
    out.write_text("old,table\n")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(result_files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        result_files.write_text(out, "new,table\n" * 1000)
    assert out.read_text() == "old,table\n" and [p.name for p in tmp_path.iterdir()] == ["sweep.csv"]


def test_unserialisable_data_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        result_files.write_json(tmp_path / "r.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []
