"""The training step and loop: every weight learns, EMA, warm-up, ablations, exact resume, NaN guard, Ctrl-C."""
import json
import math
import signal

import pytest
import torch

from vitgan_lite.checkpoint import list_checkpoints, load_checkpoint, load_latest
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages
from vitgan_lite.data_order import DataOrder, load_batch
from vitgan_lite.trainer import NonFiniteLossError, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = TrainConfig.tiny().replace(batch_size=4, n_samples=4, log_every=1)


@pytest.fixture(scope="module")
def data():
    return SyntheticImages(n=24)


def make(data, dcfg=None, **train):
    return Trainer(GeneratorConfig.tiny(), dcfg or DiscriminatorConfig.tiny(), TINY.replace(**train), data, "cpu")


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_one_step_updates_every_weight_of_g_and_d(data):
    trainer = make(data)
    before_g, before_d = snapshot(trainer.G), snapshot(trainer.D)
    logs = trainer.read_logs(trainer.train_step())
    assert logs["step"] == 1 and trainer.step == 1
    assert all(math.isfinite(v) for v in logs.values())
    assert logs["loss_D"] == pytest.approx(logs["adv"] + logs["bcr"], rel=1e-6)
    # Adam with beta1 = 0 moves every weight that received a gradient: a weight left unchanged
    # was cut off from the loss (the detached Fourier features / dropped MLP bugs of other ports)
    unchanged = [n for n, p in trainer.G.named_parameters() if torch.equal(p, before_g[n])]
    unchanged += [n for n, p in trainer.D.named_parameters() if torch.equal(p, before_d[n])]
    assert unchanged == []


def test_ema_tracks_every_generator_weight_with_its_decay(data):
    trainer = make(data, ema_half_life_images=8)           # decay 0.5 ** (4 / 8)
    assert len(trainer.ema.shadow_params) == len(list(trainer.G.parameters()))
    before = snapshot(trainer.G)
    trainer.train_step()
    decay = min(0.5 ** 0.5, 2 / 11)                         # torch-ema's warm-up: (1 + n) / (10 + n)
    for name, p in trainer.ema_generator().named_parameters():
        expected = decay * before[name] + (1 - decay) * dict(trainer.G.named_parameters())[name]
        torch.testing.assert_close(p, expected)


def test_ema_decay_halves_a_weight_after_half_life_images():
    cfg = TrainConfig.tiny().replace(batch_size=32, ema_half_life_images=3200)
    assert cfg.ema_decay ** (3200 / 32) == pytest.approx(0.5)


def test_linear_warmup(data):
    trainer = make(data, warmup_steps=4, lr=0.004)
    lrs = []
    for _ in range(5):
        lrs.append(trainer.set_lr())
        trainer.step += 1
    assert lrs == pytest.approx([0.001, 0.002, 0.003, 0.004, 0.004])
    assert trainer.opt_G.param_groups[0]["lr"] == trainer.opt_D.param_groups[0]["lr"] == 0.004


@pytest.mark.parametrize("dchanges, tchanges", [
    ({"attention": "dot"}, {}),
    ({"spectral_norm": "sn", "overlapping_patches": False}, {}),
    ({"spectral_norm": "none"}, {"bcr": False, "augment": ""}),
    ({}, {"r1_gamma": 1.0, "precision": "bf16"}),            # bf16 autocast runs on CPU
    ({}, {"precision": "fp16"}),                              # fp16 autocast and its scaler too
])
def test_ablations_train(data, dchanges, tchanges):
    trainer = make(data, DiscriminatorConfig.tiny().replace(**dchanges), **tchanges)
    logs = trainer.train_step()
    assert ("bcr" in logs) == trainer.tcfg.bcr and ("r1" in logs) == (trainer.tcfg.r1_gamma > 0)
    assert torch.isfinite(logs["loss_D"] + logs["loss_G"])


def test_data_order_is_a_seeded_permutation_per_epoch():
    order = DataOrder(10, 3, seed=5)
    epoch0 = torch.cat([order.next_indices() for _ in range(3)])   # 9 of 10, the last partial dropped
    assert len(set(epoch0.tolist())) == 9
    first_of_epoch1 = order.next_indices()
    assert order.state_dict() == {"epoch": 1, "position": 3}
    again = DataOrder(10, 3, seed=5)
    again.load_state_dict({"epoch": 1, "position": 0})
    assert torch.equal(again.next_indices(), first_of_epoch1)
    assert not torch.equal(DataOrder(10, 3, seed=6).next_indices(), epoch0[:3])
    with pytest.raises(ValueError, match="fewer than batch_size"):
        DataOrder(2, 3, seed=0)


def test_resume_is_exact(data, tmp_path):
    straight = make(data)
    straight.run(6)
    first = make(data, checkpoint_every=100)
    first.run(3, tmp_path)                                    # ends with ckpt_0000003.pt
    _, state = load_latest(tmp_path)
    resumed = Trainer.from_state(state, data, "cpu")
    assert resumed.step == 3
    resumed.run(6, tmp_path)
    pairs = [(straight.G, resumed.G), (straight.D, resumed.D), (straight.ema_generator(), resumed.ema_generator())]
    for a, b in pairs:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name                     # bit-identical on CPU
    adam_a, adam_b = straight.opt_D.state_dict()["state"], resumed.opt_D.state_dict()["state"]
    assert all(torch.equal(adam_a[i]["exp_avg_sq"], adam_b[i]["exp_avg_sq"]) for i in adam_a)
    assert straight.data_order.state_dict() == resumed.data_order.state_dict()
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_without_touching_the_last_checkpoint(data, tmp_path):
    trainer = make(data, checkpoint_every=2)
    trainer.run(2, tmp_path)
    good = load_checkpoint(list_checkpoints(tmp_path)[0])
    with torch.no_grad():
        trainer.D.head.parametrizations.weight.original.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss_D became nan at step 3"):
        trainer.run(6, tmp_path)
    assert trainer.step == 3                                  # found when step 3's losses were read
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_0000002.pt"]
    newest = load_checkpoint(list_checkpoints(tmp_path)[0])
    torch.testing.assert_close(newest["D"], good["D"])


def test_ctrl_c_finishes_the_step_and_saves(data, tmp_path, monkeypatch):
    trainer = make(data, checkpoint_every=100, sample_every=100)
    step = trainer.train_step

    def step_then_ctrl_c():
        logs = step()
        if logs["step"] == 2:
            signal.raise_signal(signal.SIGINT)               # as if the user pressed Ctrl-C mid-step
        return logs

    monkeypatch.setattr(trainer, "train_step", step_then_ctrl_c)
    handler = signal.getsignal(signal.SIGINT)        # default_int_handler; SIG_IGN in a background job
    trainer.run(50, tmp_path)
    assert trainer.step == 2
    assert load_latest(tmp_path)[1]["step"] == 2
    assert (tmp_path / "samples" / "step_0000002.png").is_file()
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["step"] == 2
    assert signal.getsignal(signal.SIGINT) is handler                     # handler restored


def test_d_runs_once_per_d_step_and_once_per_g_step(data):
    trainer = make(data)
    calls = []
    trainer.D.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    u_of = lambda t: t.D.blocks[0].mlp.net[0].parametrizations.weight[0].u   # a power-iteration vector
    u = u_of(trainer).clone()
    trainer.train_step()
    assert calls == [4 * 4, 4]            # [A(x), A(G(z)), T(x), T(G(z))] in one pass, then the G step
    d_step_only = make(data)
    d_step_only.discriminator_losses(load_batch(data, torch.arange(4)), torch.zeros(4, 3, 32, 32))
    assert not torch.equal(u, u_of(trainer))                 # u refined in the D step...
    assert torch.equal(u_of(trainer), u_of(d_step_only))     # ...and only there


def test_time_budget_stops_cleanly_and_resume_continues(data, tmp_path, monkeypatch):
    clock = iter(range(1000))
    monkeypatch.setattr("vitgan_lite.loop.time.monotonic", lambda: next(clock))
    trainer = make(data, checkpoint_every=100)
    trainer.run(50, tmp_path, max_seconds=3.5)        # the clock reads 0 at the start, then 1, 2, 3, 4
    assert trainer.step == 3
    assert load_latest(tmp_path)[1]["step"] == 3      # the last step is saved, ready for --resume


def test_compile_trains_with_the_losses_of_eager(data):
    runs = {}
    for compile in (False, True):          # one after the other: both draw from torch's global RNG
        trainer = make(data, compile=compile)
        runs[compile] = [trainer.read_logs(trainer.train_step()) for _ in range(2)]
    assert trainer.g_forward is not trainer.G and trainer.d_forward is not trainer.D   # compiled on CPU
    for eager, compiled in zip(runs[False], runs[True]):
        assert compiled["loss_D"] == pytest.approx(eager["loss_D"], rel=1e-4)
        assert compiled["loss_G"] == pytest.approx(eager["loss_G"], rel=1e-4)
