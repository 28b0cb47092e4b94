"""SLSG parity with the reference implementation (../shared/fixtures/slsg-reference, see its README).

The fixture's float16 weights are widened to float32 and loaded strictly; maps, image scores and AUROCs must match
within the README's tolerances. In float32 a handful of graph nodes sit on near-ties of the kNN score (their gaps
are below float32 noise), so the float32 check is Tier 2 restricted to near-tie nodes; a float64 run of one image
must reproduce the neighbour sets exactly and meet Tier 1.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from slsg.network import SLSGNet, anomaly_map, image_score, load_network, read_state_dict
from slsg.preprocessing import IMAGENET_MEAN, IMAGENET_STD, resize_lanczos

NEAR_TIE = 1e-4  # score gap below which a neighbour flip is rounding, not a bug (README: 416 of 1536 nodes)


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    root = fixtures_dir / "slsg-reference"
    expected = dict(np.load(root / "expected.npz"))
    debug = dict(np.load(root / "debug.npz"))
    meta = json.loads((root / "expected.json").read_text())
    return root, expected, debug, meta


@pytest.fixture(scope="module")
def model(ref):
    root = ref[0]
    net = SLSGNet()
    load_network(net, read_state_dict(root / "pushpins.tch"))
    return net.eval()


def _inputs(uint8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def test_state_dict_keys_and_relative_pos_match_reference(ref, model):
    raw = torch.load(ref[0] / "pushpins.tch", map_location="cpu", weights_only=True)
    assert list(SLSGNet().state_dict()) == list(raw)  # same 313 keys, same order
    assert torch.equal(SLSGNet().GCN3.relative_pos.data, raw["GCN3.relative_pos"])  # constructor is bit-exact
    assert model.GCN3.graph_conv.dilated_knn_graph.f_query is model.GCN3.graph_conv.dilated_knn_graph.f_key


def test_lanczos_resize_matches_reference_inputs(ref):
    root, expected, debug, _ = ref
    differing = [name for i, name in enumerate(expected["file_names"])
                 if not np.array_equal(np.asarray(resize_lanczos(Image.open(root / "data" / "pushpins" / "test" / name),
                                                                 256)), debug["inputs_resized_uint8"][i])]
    assert not differing, differing  # every image reported at once


def _knn_scores(model: SLSGNet, l4: torch.Tensor) -> torch.Tensor:
    """Independent recomputation of the kNN score (cos + relative_pos) from layer4 features: (B,N,N)."""
    gcn = model.GCN3
    h = gcn.fc1(l4).flatten(2).unsqueeze(-1)
    q = gcn.graph_conv.dilated_knn_graph.f_key(h).squeeze(-1)  # (B,C,N)
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.einsum("bcn,bcm->bnm", q, q) + gcn.relative_pos


def test_float32_maps_scores_and_aurocs(ref, model):
    root, expected, debug, meta = ref
    x = _inputs(debug["inputs_resized_uint8"])
    captured = {}
    hook = model.GCN3.register_forward_hook(lambda m, i, o: captured.update(l4=i[0]))
    with torch.no_grad():
        seg, _ = model(x)
        scores_nn = _knn_scores(model, captured["l4"]).numpy()
    hook.remove()
    maps = anomaly_map(seg).numpy()
    scores = image_score(torch.from_numpy(maps)).numpy()

    # Neighbour sets: any difference must be a near-tie in our own kNN scores.
    ours = model.GCN3.last_neighbours.numpy()
    theirs = debug["knn_neighbours"]
    differing = [(b, n) for b in range(6) for n in range(256) if set(ours[b, n]) != set(theirs[b, n])]
    for b, n in differing:
        row = scores_nn[b, n]
        only_ours = set(ours[b, n]) - set(theirs[b, n])
        only_theirs = set(theirs[b, n]) - set(ours[b, n])
        gap = max(abs(row[i] - row[j]) for i in only_ours for j in only_theirs)
        assert gap < NEAR_TIE, f"node {n} of image {b}: neighbour flip with score gap {gap}"
    assert len(differing) <= 16, f"{len(differing)} nodes differ: {differing}"

    diff = np.abs(maps - expected["anomaly_maps"])
    if not differing:  # Tier 1
        assert diff.max() <= 2e-4 and diff.mean() <= 2e-6
        assert np.abs(scores - expected["image_scores"]).max() <= 1e-5
    else:  # Tier 2
        assert diff.max() <= 2e-3
        assert np.abs(scores - expected["image_scores"]).max() <= 2e-4
    assert np.abs(maps.reshape(6, -1).max(1) - expected["max_scores"]).max() <= 2e-4

    labels = expected["labels"]
    folders = np.array([str(f).split("/")[0] for f in expected["file_names"]])
    assert roc_auc_score(labels, scores) == meta["auroc_image"]
    for kind in ("logical", "structural"):
        keep = (folders == "good") | (folders == f"{kind}_anomalies")
        assert roc_auc_score(labels[keep], scores[keep]) == meta[f"auroc_{kind}"]
    pixel = roc_auc_score(expected["gt_masks_256"].reshape(-1), maps.reshape(-1))
    assert abs(pixel - meta["auroc_pixel"]) <= (1e-4 if not differing else 1e-3)


def test_float64_reproduces_neighbours_exactly_tier1(ref, model):
    """Image 1 has a float32 near-tie flip; in float64 (as the README's float64 check) it must vanish."""
    root, expected, debug, _ = ref
    net = SLSGNet()
    net.load_state_dict(model.state_dict())
    net = net.double().eval()
    x = _inputs(debug["inputs_resized_uint8"][1:2]).double()
    with torch.no_grad():
        seg, _ = net(x)
    np.testing.assert_array_equal(np.sort(net.GCN3.last_neighbours.numpy()[0], axis=1),
                                  np.sort(debug["knn_neighbours"][1], axis=1))
    maps = anomaly_map(seg).float().numpy()
    diff = np.abs(maps - expected["anomaly_maps"][1:2])
    assert diff.max() <= 2e-4 and diff.mean() <= 2e-6
    assert abs(float(image_score(torch.from_numpy(maps))[0]) - expected["image_scores"][1]) <= 1e-5
