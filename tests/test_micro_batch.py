"""micro_batches: the step's batch in slices, gradients summed, equals the one-pass step."""
import pytest
import torch

from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages
from vitgan_lite.micro_batch import accumulate, slices
from vitgan_lite.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
# No random draws inside the step besides z (no DiffAugment, no bCR transform): then slicing changes
# nothing but float rounding. R1 on, so that its per-slice gradient penalty is covered too.
DETERMINISTIC = TrainConfig.tiny().replace(batch_size=5, n_samples=4, augment="", bcr=False, r1_gamma=2.0)


def test_slices_cover_the_batch_in_nearly_equal_parts():
    assert slices(5, 2) == [slice(0, 3), slice(3, 5)]
    assert slices(6, 3) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert slices(4, 1) == [slice(0, 4)]
    for batch, n in ((7, 3), (32, 5), (9, 9)):
        parts = slices(batch, n)
        assert [i for part in parts for i in range(part.start, part.stop)] == list(range(batch))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    for n in (0, 6):
        with pytest.raises(ValueError, match="micro_batches"):
            slices(5, n)


def test_accumulate_weights_each_slice_by_its_share():
    """Mean of x**2 over 5 numbers, in slices of 3 and 2: the gradient and the terms of the whole batch."""
    x = torch.tensor([1.0, -2.0, 3.0, 0.5, 4.0], requires_grad=True)
    seen = []
    terms = accumulate(lambda rows: {"loss": x[rows].pow(2).mean(), "n": torch.tensor(float(rows.stop - rows.start))},
                       5, 2, lambda loss: loss.backward(), later_slices=lambda: _record(seen, "later"),
                       before_last=lambda: _record(seen, "before_last"))
    torch.testing.assert_close(x.grad, 2 * x.detach() / 5)                 # d/dx mean(x^2)
    torch.testing.assert_close(terms["loss"], x.detach().pow(2).mean())
    assert terms["n"].item() == pytest.approx(3 * 3 / 5 + 2 * 2 / 5)       # weighted like the losses
    assert seen == ["before_last", "later"]                                 # first slice: no sync; second: frozen


class _record:
    def __init__(self, seen, name):
        self.seen, self.name = seen, name

    def __enter__(self):
        self.seen.append(self.name)

    def __exit__(self, *exc):
        return False


def trainer_after_one_step(micro_batches: int) -> tuple[Trainer, dict]:
    trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(),
                      DETERMINISTIC.replace(micro_batches=micro_batches), SyntheticImages(n=20), "cpu")
    return trainer, trainer.read_logs(trainer.train_step())


@pytest.mark.parametrize("micro_batches", [2, 5])
def test_sliced_step_has_the_gradients_losses_and_sigma_of_the_whole_batch(micro_batches):
    (whole, whole_logs), (sliced, sliced_logs) = trainer_after_one_step(1), trainer_after_one_step(micro_batches)
    for net in ("G", "D"):   # the gradients of the step stay on the parameters until the next step
        for (name, a), b in zip(getattr(whole, net).named_parameters(), getattr(sliced, net).parameters()):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7, msg=f"{net}.{name}")
    for name, buffer in whole.D.named_buffers():             # u refined once per step, not per slice
        torch.testing.assert_close(dict(sliced.D.named_buffers())[name], buffer, msg=name)
    for key in ("loss_D", "loss_G", "adv", "r1", "d_real", "d_fake"):   # the logs: the whole batch's
        assert sliced_logs[key] == pytest.approx(whole_logs[key], rel=1e-5, abs=1e-7), key


def test_one_slice_is_the_one_pass_d_step_bit_for_bit():
    """micro_batches = 1 (the default) multiplies by 1.0 and nothing else, so runs started before the
    option resume exactly: D after a step equals one plain backward of L_D on the whole batch (with
    DiffAugment and bCR on), bit for bit."""
    cfg = TrainConfig.tiny().replace(batch_size=4, n_samples=4)
    assert cfg.micro_batches == 1
    stepped = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), cfg, SyntheticImages(n=20), "cpu")
    stepped.train_step()
    by_hand = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), cfg, SyntheticImages(n=20), "cpu")
    by_hand.set_lr()
    real = by_hand.real_batch()
    with torch.no_grad():
        fake = by_hand.G(by_hand.latents(4))
    by_hand.discriminator_losses(real, fake)["loss"].backward()
    by_hand.opt_D.step()
    for (name, a), b in zip(stepped.D.state_dict().items(), by_hand.D.state_dict().values()):
        assert torch.equal(a, b), name


def test_config_refuses_more_slices_than_images():
    with pytest.raises(ValueError, match="micro_batches"):
        TrainConfig.tiny().replace(batch_size=4, micro_batches=5)
    with pytest.raises(ValueError, match="micro_batches"):
        TrainConfig.tiny().replace(micro_batches=0)
