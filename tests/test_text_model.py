"""Tokenizer, dataset, the text model trained through the one training loop, and the likelihood estimator."""

import math

import pytest
import torch

from robodiff.text.corpus import Corpus, make_facts, read_corpus
from robodiff.text.dataset import TokenDataset
from robodiff.text.generation import complete
from robodiff.text.likelihood import conditional_log_likelihood, exact_conditional_bound
from robodiff.text.model import TextLM, TextTransformer, build_model, text_model_config
from robodiff.text.tokenizer import TextTokenizer, train_tokenizer
from robodiff.training import train
from robodiff.training.checkpoint import load_model

LINES = ["Talvin is the mother of Morosa", "Kesh was born in Varnol", "The teacher of Drou is Bimsa",
         "Zeboth is the doctor of Laith"]


def test_tokenizer_round_trips_and_travels_as_json():
    for kind in ("bpe", "char"):
        tok = train_tokenizer(LINES, kind, vocab_size=256)
        again = TextTokenizer.from_json(tok.to_json())
        for line in LINES:
            ids = again.encode(line)
            assert ids[0] == tok.bos_id and again.decode(ids + [tok.eos_id, tok.eos_id]) == line
    assert len(train_tokenizer(LINES, "char").encode(LINES[0])) == len(LINES[0]) + 2  # BOS + chars + word start


def test_sft_dataset_masks_the_prompt_and_pads_with_eos(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Talvin is the mother of\tMorosa\nKesh was born in\tVarnol\n")
    corpus = read_corpus(path, sft=True)
    tok = train_tokenizer(corpus.lines, "bpe", 128)
    ds = TokenDataset.from_corpus(corpus, tok)
    item = ds[0]
    n_prompt = len(tok.encode("Talvin is the mother of"))
    assert item["prompt_mask"][:n_prompt].all() and not item["prompt_mask"][n_prompt:].any()
    assert item["tokens"][-1] == tok.eos_id
    (tmp_path / "bad.tsv").write_text("no tab here\n")
    with pytest.raises(ValueError, match="bad.tsv:1: an SFT corpus needs one TAB"):
        read_corpus(tmp_path / "bad.tsv", sft=True)


def test_fact_corpus_holds_out_the_reversed_phrasing_of_one_way_facts():
    corpus = make_facts(seed=3, n_both=10, n_one_way=5)
    assert len(corpus.lines) == 2 * 10 + 5
    for q in corpus.questions:
        trained = f"{q.prompt} {q.answer}" in corpus.lines
        assert trained == (q.split == "both" or q.direction == "forward"), q


@pytest.mark.parametrize("objective", ["mdm", "ar"])
def test_tiny_model_overfits_a_handful_of_sequences_through_the_shared_loop(tmp_path, objective, one_thread):
    torch.manual_seed(0)
    tok = train_tokenizer(LINES, "bpe", 256)
    ds = TokenDataset.from_corpus(Corpus(lines=LINES), tok)
    cfg = {"output_dir": str(tmp_path / objective), "seed": 0, "device": "cpu",
           "text": text_model_config(tok, objective=objective, d_model=64, n_layers=1, n_heads=4, max_len=16,
                                     random_length_prob=0.0),
           "training": {"batch_size": 4, "lr": 3e-3, "lr_warmup_steps": 10, "max_steps": 300, "betas": [0.9, 0.99],
                        "lr_scheduler": "constant_with_warmup", "weight_decay": 0.0, "num_epochs": 10**6,
                        "ema": {"enabled": False}, "rollout_every": None, "val_every": 0, "progress": False,
                        "checkpoint": {"every": 10**6}},
           "logging": {"tensorboard": False}}
    result = train(cfg, build_model, ds)
    model, _ = load_model(result.latest_checkpoint, build_model)
    prompts = [" ".join(line.split()[:-1]) for line in LINES]
    answers = complete(model, prompts, total_length=ds.seq_len)
    assert answers == [line.split()[-1] for line in LINES]


def test_mc_likelihood_matches_exact_enumeration_on_a_toy_model():
    torch.manual_seed(0)
    net = TextTransformer(10, 16, d_model=16, n_layers=1, n_heads=2).eval()
    den = lambda x, t, cond: net(x)  # noqa: E731
    prompt, answer = torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8, 9])
    exact = exact_conditional_bound(den, 0, prompt, answer)
    g = torch.Generator().manual_seed(0)
    mc = [conditional_log_likelihood(den, 0, prompt, answer, num_samples=64, generator=g) for _ in range(30)]
    mean, se = sum(mc) / len(mc), torch.tensor(mc).std().item() / math.sqrt(len(mc))
    assert abs(mean - exact) < 4 * se + 1e-6, (mean, exact, se)


def test_bound_is_the_exact_log_likelihood_for_a_factorised_model():
    # logits that depend only on the position: p(answer) = prod_i p_i(a_i), and the L / l weight makes the
    # bound exact (without it, or with l ~ U{0..L}, it would not be)
    table = torch.randn(7, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    den = lambda x, t, cond: table[: x.shape[1]].expand(x.shape[0], -1, -1)  # noqa: E731
    prompt, answer = torch.tensor([3, 4]), torch.tensor([6, 7, 8, 9, 5])
    logp = table.clone()
    logp[:, 0] = -torch.inf
    logp = torch.log_softmax(logp, -1)
    truth = sum(float(logp[2 + i, a]) for i, a in enumerate(answer.tolist()))
    assert exact_conditional_bound(den, 0, prompt, answer) == pytest.approx(truth, abs=1e-9)


def test_ar_and_mdm_twins_have_the_same_parameters():
    tok = train_tokenizer(LINES, "bpe", 256)
    sizes = [sum(p.numel() for p in TextLM(tok, obj, d_model=32, n_layers=2).parameters()) for obj in ("mdm", "ar")]
    assert sizes[0] == sizes[1]
