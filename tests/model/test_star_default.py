"""The STAR checkpoint shipped in the package: loads with both networks, fits the size budget, and carries the record
of how it was made (commands, data seeds, curves) beside it."""

import json

from inspatio_sim.model.star import checkpoint as ckpt


def test_the_shipped_checkpoint_loads_and_is_documented():
    assert ckpt.DEFAULT.is_file() and ckpt.DEFAULT.stat().st_size <= 20 * 2**20
    nets, meta, _ = ckpt.load(ckpt.DEFAULT, want="student")
    assert {"teacher", "student"} <= set(nets)
    assert meta["teacher_minutes"] > 0 and meta["student_minutes"] > 0
    record = json.loads((ckpt.DEFAULT.parent / "star_default_data.json").read_text())
    assert record["commands"] and record["student_data_shards"] and "full_recipe" in record
    for stage in ("teacher", "student"):
        assert (ckpt.DEFAULT.parent / f"star_default_{stage}_curve.csv").is_file()
