"""Parameter counts, MACs and receptive fields against hand-computed numbers."""

import pytest
import torch

from mnist_budget.config.step_config import parse_step
from mnist_budget.train.model_stats import count_macs, count_params, layer_rows
from mnist_budget.train.nets import build_net
from tests.test_config import entry


def step_of(layers, **changes):
    return parse_step("s", entry(layers=layers, **changes))


def first_layer_counts(layer: str, **changes) -> dict:
    # a 1-channel input would hide the in-channel factor: start from a known 8-channel layer
    rows = layer_rows(step_of(["conv 8 bn=false act=none", layer, "gap", "conv 10 k=1"], **changes))
    return rows[1]


def test_conv_3x3_8_to_16_without_bias():
    row = first_layer_counts("conv 16 bn=false")
    assert (row["params_trainable"], row["params_non_trainable"]) == (1152, 0)  # 8*16*3*3


def test_conv_with_bias_and_batch_norm():
    row = first_layer_counts("conv 16 bias=true")
    # 1152 weights + 16 biases + BN gamma/beta 32; BN running mean/var 32 non-trainable
    assert (row["params_trainable"], row["params_non_trainable"], row["params_total"]) == (1200, 32, 1232)


def test_separable_conv():
    row = first_layer_counts("sepconv 16 bn=false")
    assert row["params_trainable"] == 72 + 128  # depthwise 8*3*3 + pointwise 8*16


def test_inception_branches():
    row = first_layer_counts("inception b1=4 b3=4 b5=2 pool=2 bn=false")
    # 1x1: 8*4, 3x3: 8*4*9, 5x5: 8*2*25, pool then 1x1: 8*2
    assert row["params_trainable"] == 32 + 288 + 400 + 16
    assert row["output"] == (12, 26, 26)  # 4+4+2+2 channels, padded to keep the size


def test_prelu_has_one_slope_per_channel():
    row = first_layer_counts("conv 16 bn=false act=prelu")
    assert row["params_trainable"] == 1152 + 16


def test_dense_head():
    rows = layer_rows(step_of(["conv 4 bn=false", "maxpool k=13", "dense 10"]))
    assert rows[-1]["params_trainable"] == 4 * 2 * 2 * 10 + 10
    assert rows[-1]["output"] == (10, 1, 1)


def test_residual_keeps_shape_and_counts_its_body():
    rows = layer_rows(step_of(["conv 8", {"residual": ["conv 8 p=1", "conv 8 p=1"]}, "gap", "conv 10 k=1"]))
    assert rows[1]["output"] == (8, 26, 26)
    assert rows[1]["params_trainable"] == 2 * (8 * 8 * 9 + 16)
    assert rows[1]["receptive_field"] == 3 + 2 + 2


def test_receptive_field_of_a_known_stack():
    rows = layer_rows(
        step_of(
            [
                "conv 8",
                "conv 8",
                "maxpool",
                "conv 8 k=1",
                "conv 8",
                "conv 8 s=2",
                "conv 8",
                "gap",
                "conv 10 k=1",
            ]
        )
    )
    # 3, 5, pool (k2 s2): 6, 1x1: 6, +2*2: 10, stride 2: +2*2 = 14 (jump 4), +2*4: 22
    assert [r["receptive_field"] for r in rows[:7]] == [3, 5, 6, 6, 10, 14, 22]
    assert [r["output"] for r in rows[:7]] == [
        (8, 26, 26),
        (8, 24, 24),
        (8, 12, 12),
        (8, 12, 12),
        (8, 10, 10),
        (8, 4, 4),
        (8, 2, 2),
    ]


def test_macs_of_a_conv():
    net = torch.nn.Conv2d(1, 8, 3, bias=False)
    assert count_macs(net) == 26 * 26 * 8 * 9


def test_whole_net_counts_match_the_module():
    step = step_of(["conv 8", "conv 16", "maxpool", "conv 8 k=1", "conv 16", "gap", "conv 10 k=1"])
    net = build_net(step)
    counts = count_params(net)
    assert counts["params_trainable"] == sum(p.numel() for p in net.parameters())
    bn_channels = 8 + 16 + 8 + 16
    weights = 72 + 8 * 16 * 9 + 16 * 8 + 8 * 16 * 9 + 16 * 10
    assert counts == {
        "params_trainable": weights + 2 * bn_channels,
        "params_non_trainable": 2 * bn_channels,
        "params_total": weights + 4 * bn_channels,
    }
    assert sum(r["params_total"] for r in layer_rows(step)) == counts["params_total"]


def test_logits_layer_has_no_activation_or_batch_norm():
    net = build_net(step_of(["conv 8", "gap", "conv 10 k=1"]))
    last = net[-2]
    assert [type(m).__name__ for m in last] == ["Conv2d"]
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    ("order", "names"),
    [("after_act", ["Conv2d", "ReLU", "BatchNorm2d"]), ("before_act", ["Conv2d", "BatchNorm2d", "ReLU"])],
)
def test_batch_norm_order(order, names):
    net = build_net(step_of(["conv 8", "gap", "conv 10 k=1"], bn_order=order))
    assert [type(m).__name__ for m in net[0]] == names


def test_dropout_per_step_and_per_layer():
    net = build_net(step_of(["conv 8", "conv 8 drop=0.2", "gap", "conv 10 k=1"], dropout=0.05))
    assert net[0][-1].p == 0.05 and net[1][-1].p == 0.2
    assert not any(isinstance(m, torch.nn.Dropout) for m in net[-2].modules())


def test_a_dropout_layer_after_a_pool_drops_in_train_mode_only():
    net = build_net(step_of(["conv 8", "maxpool", "dropout p=0.25", "conv 8", "gap", "conv 10 k=1"]))
    dropout = net[2]
    assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.25
    rows = layer_rows(step_of(["conv 8", "maxpool", "dropout p=0.25", "conv 8", "gap", "conv 10 k=1"]))
    assert rows[2]["params_total"] == 0 and rows[2]["output"] == rows[1]["output"]  # shape kept
    x = torch.ones(64, 8, 13, 13)
    net.eval()
    assert torch.equal(dropout(x), x)
    net.train()
    assert (dropout(x) == 0).float().mean().item() == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("p", ["0", "1", "1.5"])
def test_a_dropout_layer_needs_a_probability_below_one(p):
    with pytest.raises(ValueError, match=r"steps.s.layers\[1\] \(dropout\): p must be in \(0, 1\)"):
        step_of(["conv 8", f"dropout p={p}", "gap", "conv 10 k=1"])


def test_batch_norm_without_affine_keeps_only_its_running_statistics():
    row = first_layer_counts("conv 16", bn_affine=False)
    # 1152 weights; no gamma/beta; BN running mean/var 32 non-trainable
    assert (row["params_trainable"], row["params_non_trainable"], row["params_total"]) == (1152, 32, 1184)


def test_a_dilated_or_5x5_depthwise_kernel_sees_wider_for_no_or_few_weights():
    plain, dilated, wide = (
        layer_rows(step_of(["conv 8", f"sepconv 16 {opts}".strip(), "gap", "conv 10 k=1"]))[1]
        for opts in ("", "d=2", "k=5")
    )
    # depthwise 8*3*3 + pointwise 8*16 + BN 32 both ways: the dilation costs nothing
    assert plain["params_trainable"] == dilated["params_trainable"] == 72 + 128 + 32
    assert wide["params_trainable"] == 8 * 25 + 128 + 32  # 16 more weights per channel
    # a 3x3 kernel at dilation 2 spans 5 pixels, as a 5x5 does: 3 + 4
    assert plain["receptive_field"] == 5 and dilated["receptive_field"] == wide["receptive_field"] == 7
    assert dilated["output"] == wide["output"] == (16, 22, 22)
    conv = build_net(step_of(["conv 8", "sepconv 16 d=2", "gap", "conv 10 k=1"]))[1][0]
    assert conv.dilation == (2, 2) and conv.groups == 8


def test_a_dilated_kernel_wider_than_its_input_is_refused_before_training():
    with pytest.raises(
        ValueError, match=r"layers\[0\] \(conv 8 d=20\): kernel 3 \(dilated to 41\) larger than"
    ):
        build_net(step_of(["conv 8 d=20", "gap", "conv 10 k=1"]))
    with pytest.raises(ValueError, match=r"layers\[0\] \(conv\): d must be at least 1"):
        step_of(["conv 8 d=0", "gap", "conv 10 k=1"])
