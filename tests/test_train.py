"""The training step and loop: every weight learns, bCR modes, flips, EMA, warm-up, ablations, exact
resume, NaN guard, Ctrl-C."""
import dataclasses
import json
import math
import signal

import pytest
import torch

from vitgan_lite.augment import diff_augment
from vitgan_lite.checkpoint import list_checkpoints, load_checkpoint, load_latest
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages
from vitgan_lite.data_order import DataOrder, load_batch
from vitgan_lite.ema import ema_decay_at
from vitgan_lite.schedule import lr_scale
from vitgan_lite.spectral import power_iteration_frozen
from vitgan_lite.trainer import NonFiniteLossError, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = TrainConfig.tiny().replace(batch_size=4, n_samples=4, log_every=1)


@pytest.fixture(scope="module")
def data():
    return SyntheticImages(n=24)


def make(data, dcfg=None, **train):
    return Trainer(GeneratorConfig.tiny(), dcfg or DiscriminatorConfig.tiny(), TINY.replace(**train), data, "cpu")


def softplus(t: float) -> float:
    return math.log1p(math.exp(t))


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_one_step_updates_every_weight_of_g_and_d(data):
    trainer = make(data)
    logs = trainer.read_logs(trainer.train_step())
    assert logs["step"] == 1 and trainer.step == 1
    assert all(math.isfinite(v) for v in logs.values())
    assert logs["loss_D"] == pytest.approx(logs["adv"] + logs["bcr"], rel=1e-6)
    # Every weight needs a TRUE gradient: one cut off from the loss never learns (the detached Fourier
    # features / dropped MLP of other ports; a bias that cancels in q - k). "Adam moved it" cannot tell:
    # with beta1 = 0 Adam moves a weight by ~lr for any gradient, float32 rounding noise included. In
    # float64 a gradient that cancels exactly is ~1e-16 of the largest; the smallest real one here ~1e-4.
    def dead(loss, model):
        names, params = zip(*model.named_parameters())
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        size = [0.0 if g is None else g.abs().max().item() for g in grads]
        return [name for name, s in zip(names, size) if not s > 1e-8 * max(size)]

    G, D = trainer.G.double(), trainer.D.double()
    real = load_batch(data, torch.arange(4)).double()
    with torch.no_grad():
        fake = G(trainer.latents(4).double())
    terms = trainer.discriminator_losses(real, fake)                   # L_D of the step, float64 D
    logits = D(trainer.augment(G(trainer.latents(4).double())))        # L_G of the step
    assert dead(terms["adv"] + terms["bcr"], D) + dead(torch.nn.functional.softplus(-logits).mean(), G) == []


def test_ema_copies_g_until_the_start_then_averages_with_its_decay(data):
    trainer = make(data, ema_half_life_images=8, ema_start_images=8)   # batch 4: decay 0.5 ** (4 / 8)
    assert len(trainer.ema.shadow_params) == len(list(trainer.G.parameters()))
    for _ in range(2):                                       # 4 and 8 images seen: not past the start
        trainer.train_step()
        for name, p in trainer.ema_generator().named_parameters():
            assert torch.equal(p, dict(trainer.G.named_parameters())[name]), name   # an exact copy
    before = snapshot(trainer.ema_generator())
    trainer.train_step()                                     # 12 images: the first average
    decay = 0.5 ** 0.5
    for name, p in trainer.ema_generator().named_parameters():
        expected = decay * before[name] + (1 - decay) * dict(trainer.G.named_parameters())[name]
        torch.testing.assert_close(p, expected)


def test_ema_torch_ema_warmup_option(data):
    trainer = make(data, ema_half_life_images=8, ema_warmup="torch_ema")
    before = snapshot(trainer.G)
    trainer.train_step()
    decay = min(0.5 ** 0.5, 2 / 11)                         # torch-ema's warm-up: (1 + n) / (10 + n), n = 1
    for name, p in trainer.ema_generator().named_parameters():
        expected = decay * before[name] + (1 - decay) * dict(trainer.G.named_parameters())[name]
        torch.testing.assert_close(p, expected)


def test_ema_start_defaults_to_one_half_life_as_officially():
    cfg = TrainConfig.cifar10()                              # batch 128, half-life 1M images
    assert ema_decay_at(cfg, 7812) == 0.0                    # 999,936 images: still a copy
    assert ema_decay_at(cfg, 7813) == cfg.ema_decay          # 1,000,064 images: the constant decay
    assert ema_decay_at(cfg.replace(ema_start_images=0), 1) == cfg.ema_decay
    assert ema_decay_at(cfg.replace(ema_warmup="torch_ema"), 7813) == pytest.approx(7814 / 7823)


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


def test_lr_decay_falls_linearly_to_zero_at_the_runs_last_step(data):
    trainer = make(data, warmup_steps=0, steps=10, lr_decay=0.5, lr=0.004, d_lr_mul=2.0)
    g_lrs, d_lrs = [], []
    for _ in range(10):
        g_lrs.append(trainer.set_lr())
        d_lrs.append(trainer.opt_D.param_groups[0]["lr"])
        trainer.step += 1
    by_hand = [0.004] * 6 + [0.004 * (10 - i) / 5 for i in range(6, 10)]     # lr * (steps - i) / (0.5 * steps)
    assert g_lrs == pytest.approx(by_hand) and d_lrs == pytest.approx([2.0 * lr for lr in by_hand])
    with pytest.raises(ValueError, match=r"step 10 is past TrainConfig.steps = 10.*raise steps"):
        trainer.set_lr()                                    # lr 0: training on would change nothing


def test_warmup_and_decay_multiply():
    cfg = TrainConfig.tiny().replace(warmup_steps=4, steps=10, lr_decay=0.5)
    assert [lr_scale(cfg, i) for i in range(10)] == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert [lr_scale(cfg.replace(lr_decay=0.0), i) for i in (9, 10, 10**6)] == [1.0, 1.0, 1.0]  # constant: no end


def test_d_lr_mul_scales_only_the_discriminators_lr(data):
    trainer = make(data, warmup_steps=2, lr=0.004, d_lr_mul=2.5)
    assert trainer.opt_D.param_groups[0]["lr"] == pytest.approx(0.01)   # before any step, too
    seen = []
    for _ in range(3):
        seen += [trainer.set_lr(), trainer.opt_G.param_groups[0]["lr"], trainer.opt_D.param_groups[0]["lr"]]
        trainer.step += 1
    assert seen == pytest.approx([0.002, 0.002, 0.005, 0.004, 0.004, 0.01, 0.004, 0.004, 0.01])


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


@pytest.mark.parametrize("changes", [
    {},
    # flips of the real data, a second DiffAugment draw for bCR, and the EMA starting after the resume
    {"hflip": True, "bcr_mode": "official", "ema_start_images": 16},
])
def test_resume_is_exact(data, tmp_path, changes):
    straight = make(data, **changes)
    straight.run(6)
    first = make(data, checkpoint_every=100, **changes)
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


@pytest.mark.parametrize("mode, views", [("augmented", 4), ("official", 4), ("paper", 6)])
def test_d_runs_once_per_d_step_and_once_per_g_step(data, mode, views):
    trainer = make(data, bcr_mode=mode)
    calls = []
    trainer.D.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    u_of = lambda t: t.D.blocks[0].mlp.net[0].parametrizations.weight[0].u   # a power-iteration vector
    u = u_of(trainer).clone()
    trainer.train_step()
    # e.g. [A(x), A(G(z)), T(x), T(G(z))] in one pass (paper: x and G(z) too), then the G step
    assert calls == [views * 4, 4]
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


@pytest.mark.parametrize("mode", ["augmented", "official", "paper"])
def test_bcr_modes_match_their_formulas_by_hand(data, mode):
    trainer = make(data, bcr_mode=mode, lambda_real=3.0, lambda_fake=0.5)
    cfg, B = trainer.tcfg, 4
    real = load_batch(data, torch.arange(B))
    with torch.no_grad():
        fake = trainer.G(trainer.latents(B))
    torch.manual_seed(1)
    terms = trainer.discriminator_losses(real, fake)
    # by hand, with the same random draws in the same order: A first, then the second view
    torch.manual_seed(1)
    A = lambda images: diff_augment(images, cfg.augment, cfg.augment_p)
    T = lambda images: diff_augment(images, cfg.bcr_policy)
    images = torch.cat([real, fake])
    a = A(images)
    u, v = {"augmented": lambda: (a, T(images)),            # D(A(x)) vs D(T(x))
            "official": lambda: (a, A(images)),              # D(A(x)) vs D(A'(x)), a second draw
            "paper": lambda: (images, T(images))}[mode]()    # D(x) vs D(T(x)), clean images
    with torch.no_grad(), power_iteration_frozen(trainer.D):     # u as refined by the trainer's one pass
        d = lambda image: trainer.D(image[None]).item()          # one image at a time
        real_term = sum((d(u[i]) - d(v[i])) ** 2 for i in range(B)) / B
        fake_term = sum((d(u[B + i]) - d(v[B + i])) ** 2 for i in range(B)) / B
        adv = sum(softplus(-d(a[i])) + softplus(d(a[B + i])) for i in range(B)) / B
    assert terms["bcr"].item() == pytest.approx(3.0 * real_term + 0.5 * fake_term, rel=1e-4)
    assert terms["adv"].item() == pytest.approx(adv, rel=1e-5)


def test_hflip_mirrors_about_half_the_real_images_exactly(data):
    trainer = make(data, hflip=True)
    order = DataOrder(len(data), 4, TINY.seed)                 # the same order, to know the indices
    rng = torch.get_rng_state()
    flipped = []
    for _ in range(6):                                         # one epoch of 24 images
        indices = order.next_indices()
        clean, real = load_batch(data, indices), trainer.real_batch()
        flips = order.flips(indices)
        assert torch.equal(real[flips], clean[flips].flip(-1)) and torch.equal(real[~flips], clean[~flips])
        assert (clean[flips] != clean[flips].flip(-1)).flatten(1).any(1).all()   # a visible mirror
        flipped.append(flips)
    assert torch.equal(torch.get_rng_state(), rng)             # no draw from the global RNG
    assert 0 < torch.cat(flipped).sum() < 24
    coins = DataOrder(10_000, 100, seed=0).flips(torch.arange(10_000))   # epoch 0, every image
    assert abs(coins.float().mean().item() - 0.5) < 4 * 0.005          # 4 binomial standard deviations
    # the coins come after the permutation from its generator: the order of earlier runs is unchanged
    assert torch.equal(DataOrder(10, 3, seed=5).permutation(2),
                       torch.randperm(10, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2)))


def test_config_from_an_older_checkpoint_keeps_its_recipe():
    fields = dataclasses.asdict(TINY)
    assert TrainConfig.from_dict(fields) == TINY
    for name in ("hflip", "bcr_mode", "ema_start_images", "ema_warmup"):
        fields.pop(name)                                      # a run saved before these fields
    old = TrainConfig.from_dict(fields)
    assert (old.hflip, old.bcr_mode, old.ema_warmup) == (False, "augmented", "torch_ema")
