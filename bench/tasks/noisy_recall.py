"""MAD's noisy in-context recall (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures", arXiv 2403.17844): in-context recall with pairs of noise tokens among the key-value pairs.

The same generator as `in-context-recall` (mad-lab's `generate_noisy_in_context_recall_instance`
calls `generate_in_context_recall_instance`) at MAD's benchmark settings
(`configs/tasks/noisy-in-context-recall.yml`): vocab_size 32 of which noise_vocab_size 16 are noise
ids [16, 32), frac_noise 0.2, seq_len 128, multi_query; keys [0, 8), values [8, 16). A noise pair's
two tokens are drawn uniformly (with replacement) from the noise ids and are never scored. Scoring,
`baseline` (1/8) and where we differ: as `in-context-recall`'s docstring says.
"""

from __future__ import annotations

from bench import tasks
from bench.tasks.in_context_recall import InContextRecall


@tasks.register("noisy-recall")
class NoisyRecall(InContextRecall):
    """Per position, causal: at a key seen before, predict its value; noise pairs in between."""

    defaults = {"vocab_size": 32, "noise_vocab_size": 16, "frac_noise": 0.2}
