"""Text on the diffusion core: an LLaDA-style masked diffusion LM, its autoregressive twin, the reversal test.

    corpus.py      synthetic fact corpora (and user text files)      tokenizer.py  BPE / char tokenizer
    model.py       the transformer (bidirectional or causal), TextLM  dataset.py    token tensors
    generation.py  prompt -> answer through robodiff.diffusion.sample likelihood.py Monte-Carlo log-likelihood
    reversal.py    the reversal-curse experiment, MDM vs AR           cli.py        `robodiff text ...`
"""
