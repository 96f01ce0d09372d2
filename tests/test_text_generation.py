"""Generation through the one sampling loop: classifier-free guidance, the AR twin, the CLI with --trace."""

import pytest
import torch

from robodiff.cli import main
from robodiff.diffusion import GenerationSettingsError, MaskedDiffusion, sample
from robodiff.text.generation import generate_ids
from robodiff.text.model import TextLM
from robodiff.text.tokenizer import train_tokenizer

LINES = ["Talvin is the mother of Morosa", "Kesh was born in Varnol"]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TextLM(train_tokenizer(LINES, "bpe", 128), "mdm", d_model=16, n_layers=1, n_heads=2, max_len=32).eval()


def prompt_of(model):
    return torch.tensor([model.tokenizer.encode("Talvin is the"), model.tokenizer.encode("Kesh was born")])


def test_cfg_with_w0_equals_plain_conditional_sampling(model):
    # temperature > 0: a guided run that drew different noise or saw a different start would differ
    kw = dict(block_length=4, steps=4, temperature=1.0)
    plain = generate_ids(model, prompt_of(model), 8, generator=torch.Generator().manual_seed(3), **kw)
    w0 = generate_ids(model, prompt_of(model), 8, guidance=0.0, generator=torch.Generator().manual_seed(3), **kw)
    guided = generate_ids(model, prompt_of(model), 8, guidance=2.0, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(plain, w0)
    assert not torch.equal(plain, guided)


def test_cfg_hides_the_prompt_in_the_unconditional_pass_and_uses_llada_scale(model):
    w, seen = 0.7, {}
    prompt = prompt_of(model)
    P, B, L = prompt.shape[1], 2, prompt.shape[1] + 4

    def recording_denoiser(x, t, cond):
        out = model.denoiser(x, t, cond)
        seen.setdefault("inputs", torch.where(cond["hide"], model.process.mask_token_id, x))
        seen.setdefault("out", out)
        return out

    class RecordingProcess(MaskedDiffusion):
        def step(self, model_output, timestep, sample, generator=None):
            seen.setdefault("combined", model_output)
            return super().step(model_output, timestep, sample, generator)

    given = torch.cat([prompt, torch.zeros(B, 4, dtype=torch.long)], 1)
    given_mask = (torch.arange(L) < P).expand(B, L)
    proc = RecordingProcess(model.process.mask_token_id, gen_length=4)
    sample(recording_denoiser, (B, L), {"hide": torch.zeros(B, L, dtype=torch.bool)}, proc, 4, given=given,
           given_mask=given_mask, guidance_scale=w + 1, uncond={"hide": given_mask}, dtype=torch.long)
    conditional, unconditional = seen["inputs"].chunk(2)
    assert torch.equal(conditional[:, :P], prompt) and (unconditional == model.process.mask_token_id).all()
    c, u = seen["out"].chunk(2)
    assert torch.allclose(seen["combined"], u + (w + 1) * (c - u), atol=1e-6)


def test_ar_twin_decodes_greedily_through_the_same_loop(model):
    ar = TextLM(model.tokenizer, "ar", d_model=16, n_layers=1, n_heads=2, max_len=32).eval()
    prompt = prompt_of(model)
    out = generate_ids(ar, prompt, 5)
    seq = prompt
    for _ in range(5):  # reference: plain left-to-right argmax decoding (the mask token is never predicted)
        logits = ar.net(seq)[:, -1].index_fill(-1, torch.tensor([ar.process.mask_token_id]), -torch.inf)
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)
    with pytest.raises(GenerationSettingsError, match="guidance needs a masked diffusion model"):
        generate_ids(ar, prompt, 5, guidance=1.0)


@pytest.mark.slow
def test_cli_train_then_generate_with_trace(tmp_path, capsys, one_thread):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES) + "\n")
    out = tmp_path / "run"
    assert main(["text", "train", "--corpus", str(corpus), "--steps", "3", "--d-model", "16", "--n-layers", "1",
                 "--n-heads", "2", "--output-dir", str(out), "--batch-size", "2"]) == 0
    ckpt = out / "checkpoints" / "latest.ckpt"
    assert ckpt.exists()
    capsys.readouterr()
    assert main(["text", "generate", str(ckpt), "--prompt", "Talvin is", "--length", "4", "--block-length", "2",
                 "--steps", "4", "--trace"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:4]] == [f"step   {i}/4" for i in range(1, 5)]
    assert lines[0].count("[") == 1 and lines[0].split(": ")[1].split()[2:] == ["_", "_"]  # block 2 untouched
    assert "_" not in lines[3].split(": ")[1]
    # bad settings: one line, exit code 2
    assert main(["text", "generate", str(ckpt), "--prompt", "Talvin", "--length", "5", "--block-length", "2"]) == 2
    assert "not divisible by block_length" in capsys.readouterr().err
