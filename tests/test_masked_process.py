"""The masked (absorbing-state) process: forward masking, LLaDA's loss, and the reverse sampler's contract."""

import pytest
import torch

from robodiff.diffusion import GenerationSettingsError, MaskedDiffusion, ReverseProcess, masked_diffusion_loss
from robodiff.diffusion import make_scheduler, sample
from robodiff.text.model import TextTransformer

MASK, V = 0, 12


def tiny_net(causal=False, seed=0):
    torch.manual_seed(seed)
    return TextTransformer(V, 32, d_model=16, n_layers=1, n_heads=2, causal=causal).eval()


def denoiser_of(net):
    return lambda x, t, cond: net(x)


def test_both_processes_satisfy_the_loop_contract():
    assert isinstance(MaskedDiffusion(MASK), ReverseProcess)
    assert isinstance(make_scheduler("ddim"), ReverseProcess)


def test_forward_process_masks_at_rate_p_mask_and_keeps_given_positions():
    proc = MaskedDiffusion(MASK)
    x0 = torch.randint(1, V, (4000, 16))
    t = torch.full((4000,), 0.3)
    keep = torch.zeros(16, dtype=torch.bool)
    keep[:4] = True
    x_t, masked = proc.add_noise(x0, t, generator=torch.Generator().manual_seed(0), keep=keep)
    assert torch.equal(x_t[masked], torch.full_like(x_t[masked], MASK))
    assert torch.equal(x_t[~masked], x0[~masked])
    assert not masked[:, :4].any()
    rate = masked[:, 4:].float().mean().item()
    assert abs(rate - float(proc.p_mask(torch.tensor(0.3)))) < 0.01


def test_sft_loss_never_masks_the_prompt_and_normalises_by_answer_length():
    net, seen = tiny_net(), []

    def recording(x, t, cond):
        seen.append(x.clone())
        return net(x)

    x0 = torch.randint(1, V, (64, 10))
    prompt = torch.zeros(64, 10, dtype=torch.bool)
    prompt[:, :6] = True
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        masked_diffusion_loss(recording, x0, None, MaskedDiffusion(MASK), given_mask=prompt, generator=g)
    seen = torch.stack(seen)
    assert torch.equal(seen[:, :, :6], x0[:, :6].expand(20, -1, -1))     # prompt never masked
    assert (seen[:, :, 6:] == MASK).float().mean() > 0.3                  # answer masked about half the time

    # with every answer token masked at p_mask ~ 1 the SFT loss is the mean CE over answer tokens
    class AlwaysMasked(MaskedDiffusion):
        def add_noise(self, x0, t, generator=None, keep=None):
            masked = ~keep
            return torch.where(masked, torch.full_like(x0, MASK), x0), masked

        def p_mask(self, t):
            return torch.ones_like(t)

    loss = masked_diffusion_loss(denoiser_of(net), x0, None, AlwaysMasked(MASK), given_mask=prompt)
    x_t = torch.where(prompt, x0, torch.full_like(x0, MASK))
    ce = torch.nn.functional.cross_entropy(net(x_t)[:, 6:].transpose(1, 2), x0[:, 6:])
    assert loss.item() == pytest.approx(ce.item(), rel=1e-5)


def test_pretraining_loss_cuts_a_random_length_on_the_given_share_of_batches():
    lengths = []

    def uniform_logits(x, t, cond):  # the loss needs logits of the right shape, nothing more
        lengths.append(x.shape[1])
        return torch.zeros(*x.shape, V)

    x0 = torch.randint(1, V, (2, 20))
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        masked_diffusion_loss(uniform_logits, x0, None, MaskedDiffusion(MASK), generator=g, random_length_prob=0.25)
    cut = sum(n < 20 for n in lengths)
    assert 25 <= cut <= 75 and min(lengths) >= 1
    assert len(set(lengths)) > 5                                          # random lengths, not one cut


def trace_run(gen_length, block_length, steps, remasking="low_confidence", prompt_len=3, temperature=0.0):
    events = []
    proc = MaskedDiffusion(MASK, gen_length=gen_length, block_length=block_length, remasking=remasking,
                           temperature=temperature, trace=lambda i, x, c: events.append((i, x.clone(), c.clone())))
    B, L = 3, prompt_len + gen_length
    given = torch.randint(1, V, (B, L))
    given_mask = (torch.arange(L) < prompt_len).expand(B, L)
    x = sample(denoiser_of(tiny_net()), (B, L), None, proc, steps, torch.Generator().manual_seed(1),
               given=given, given_mask=given_mask, dtype=torch.long)
    return x, given, events


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_generation_fills_every_mask_in_block_order_committing_k_per_step(remasking):
    gen, block, steps, P = 10, 5, 4, 3
    x, given, events = trace_run(gen, block, steps, remasking, prompt_len=P)
    assert not (x == MASK).any()                                          # every mask filled
    assert torch.equal(x[:, :P], given[:, :P])                            # the prompt kept exactly
    # 5 masks per block over 2 steps: 3 then 2 (remainder to the first steps), for every row
    assert [int(c[0].sum()) for _, _, c in events] == [3, 2, 3, 2]
    assert all(torch.equal(c.sum(1), c[:1].sum(1).expand(3)) for _, _, c in events)
    for i, x_i, committed in events:
        block_no = i // (steps // (gen // block))
        start, end = P + block_no * block, P + (block_no + 1) * block
        assert not committed[:, :start].any() and not committed[:, end:].any()   # only the current block
        assert (x_i[:, end:] == MASK).all()                                       # nothing later committed early
        assert not (x_i[:, start:end] == MASK).any() or i % 2 == 0                # block done at its last step


def test_low_confidence_commits_the_most_probable_predictions():
    net = tiny_net()
    x, given, events = trace_run(6, 6, 3)
    # re-run the first step's model call: the committed positions must be the 2 highest-probability ones
    first = torch.where(torch.arange(9) < 3, given, torch.full_like(given, MASK))
    p = torch.softmax(net(first).double().index_fill(-1, torch.tensor([MASK]), -torch.inf), -1).amax(-1)[:, 3:]
    top2 = p.topk(2, dim=1).indices + 3
    committed = events[0][2]
    assert all(set(top2[b].tolist()) == set(committed[b].nonzero().flatten().tolist()) for b in range(3))


def test_temperature_sampling_is_seeded_and_differs_from_greedy():
    a, _, _ = trace_run(8, 4, 8, temperature=1.0)
    b, _, _ = trace_run(8, 4, 8, temperature=1.0)
    c, _, _ = trace_run(8, 4, 8, temperature=0.0)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs, steps, match", [
    (dict(gen_length=10, block_length=4), 4, "not divisible by block_length"),
    (dict(gen_length=12, block_length=4), 4, "multiple of the number of blocks"),
    (dict(gen_length=8, remasking="greedy"), 8, "remasking"),
])
def test_bad_settings_give_one_clear_error(kwargs, steps, match):
    with pytest.raises(GenerationSettingsError, match=match):
        proc = MaskedDiffusion(MASK, **kwargs)
        sample(denoiser_of(tiny_net()), (1, 12), None, proc, steps, dtype=torch.long)


def test_no_mask_token_is_refused():
    with pytest.raises(ValueError, match="needs a mask token"):
        MaskedDiffusion(None)
