"""Precision: which one 'auto' picks, fp16's loss scaler (its state survives a resume exactly), bf16 on CPU."""
import pytest
import torch

from vitgan_lite.checkpoint import load_latest
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages
from vitgan_lite.precision import Precision, resolve_precision
from vitgan_lite.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = TrainConfig.tiny().replace(batch_size=4, n_samples=4, log_every=1)


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_is_bf16_from_compute_capability_8_and_fp16_below(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda")) == expected      # T4 is 7.5, A100 8.0
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", torch.device("cpu"))


def test_fp16_scales_the_loss_and_skips_a_step_whose_gradients_overflow():
    layer = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    precision = Precision("fp16", torch.device("cpu"))
    before = layer.weight.detach().clone()
    precision.backward("D", layer(torch.ones(1, 3)).sum() * float("inf"))  # overflow: step skipped
    precision.step("D", opt)
    assert torch.equal(layer.weight, before)
    assert precision.scalers["D"].get_scale() == 65536.0 * 0.5             # and the scale backed off
    opt.zero_grad()
    for half in (0.25, 0.75):                                              # two slices: gradients add up
        precision.backward("D", layer(torch.ones(1, 3)).sum() * half)
    precision.step("D", opt)                                               # a normal step applies
    torch.testing.assert_close(layer.weight, before - 0.1)                 # grad 1 after unscaling


def test_fp16_run_resumes_with_the_exact_scaler_state(tmp_path):
    data = SyntheticImages(n=24)
    cfg = TINY.replace(precision="fp16", checkpoint_every=100)
    make = lambda: Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), cfg, data, "cpu")
    straight = make()
    straight.run(4)
    first = make()
    first.run(2, tmp_path)
    _, state = load_latest(tmp_path)
    scaler = state["precision"]["D"]
    assert (scaler["scale"], scaler["_growth_tracker"]) != (65536.0, 0)      # the scaler has moved
    resumed = Trainer.from_state(state, data, "cpu")
    resumed.run(4)
    assert resumed.precision.state_dict() == straight.precision.state_dict()
    for a, b in [(straight.G, resumed.G), (straight.D, resumed.D)]:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name


def test_bf16_run_on_cpu_trains_and_stays_close_to_fp32():
    data = SyntheticImages(n=24)
    runs = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), TINY.replace(precision=precision),
                          data, "cpu")
        runs[precision] = trainer.read_logs(trainer.train_step())
    assert runs["bf16"]["loss_D"] == pytest.approx(runs["fp32"]["loss_D"], rel=0.05)
    assert runs["bf16"]["loss_D"] != runs["fp32"]["loss_D"]                 # autocast really ran


def test_old_checkpoints_with_bf16_flag_load():
    fields = {**{k: v for k, v in vars(TrainConfig.tiny()).items() if k != "precision"}, "bf16": True}
    assert TrainConfig.from_dict(fields).precision == "bf16"
    assert TrainConfig.from_dict({**fields, "bf16": False}).precision == "fp32"
