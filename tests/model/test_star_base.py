"""The explicit completion STAR is trained on: the classical completer rolled along a trajectory with the recorded
reference slots, exactly as the completer sees it at run time."""

import numpy as np
import torch

from inspatio_sim.config import compose
from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
from inspatio_sim.model.classical import SOURCE_INPAINT, ClassicalCompleter
from inspatio_sim.model.star.adapt import window_arrays
from inspatio_sim.model.star.base import classical_base, shard_references
from inspatio_sim.render import RenderConfig, RenderOutput
from inspatio_sim.scene_source import load_scene
from inspatio_sim.world import WorldConfig


def test_classical_base_is_the_classical_rollout_with_the_recorded_slots():
    scene = load_scene(compose(["scene=tiny"]).scene, progress=False)
    d = window_arrays(scene, 4, 3, 32, WorldConfig(), RenderConfig(), CacheConfig())
    base = classical_base(d)
    e, steps, h, w = d["render_valid"].shape
    assert base["base_rgb"].shape == (e, steps, h, w, 3) and base["base_rgb"].dtype == np.uint8
    assert base["base_depth"].shape == (e, steps, h, w) and base["base_invented"].dtype == bool
    # the same steps by hand: a cache holding the recorded reference slots and the completer's own history
    refs = shard_references(d)
    cache = SpatiotemporalCache(refs, e, h, w, CacheConfig(ref_slots=d["ref_index"].shape[2]))
    completer = ClassicalCompleter()
    K = torch.as_tensor(d["K"], dtype=torch.float32)
    holes = 0
    for t in range(steps):
        frame = RenderOutput(torch.as_tensor(d["render_rgb"][:, t]),
                             torch.as_tensor(d["render_depth"][:, t].astype(np.float32)),
                             torch.as_tensor(d["render_valid"][:, t]))
        poses = torch.as_tensor(d["poses"][:, t], dtype=torch.float32)
        cache.ref_index = torch.as_tensor(d["ref_index"][:, t])
        done = completer.complete(frame, poses, K, cache.slots())
        cache.push(done.rgb, done.depth, poses, torch.zeros(e, dtype=torch.float64))
        assert np.array_equal(base["base_rgb"][:, t], done.rgb.numpy())
        assert np.array_equal(base["base_invented"][:, t], (done.filled & (done.source == SOURCE_INPAINT)).numpy())
        assert not (base["base_invented"][:, t] & d["render_valid"][:, t]).any()  # only holes are invented
        holes += int((~d["render_valid"][:, t]).sum())
    assert holes > 0  # the windows left out of the World do leave holes to complete
