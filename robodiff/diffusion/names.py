"""Names of the core's algorithms, importable without torch or diffusers (command-line choices)."""

SCHEDULER_NAMES = ("ddpm", "ddim", "dpmsolver", "lcm")  # robodiff.diffusion.schedulers implements each
REMASKING = ("low_confidence", "random")  # masked diffusion: which committed tokens are re-masked
