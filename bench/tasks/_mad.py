"""What MAD's task files share (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844; generators in athms/mad-lab, `mad/data/instances.py`): the noise options and their check."""

from __future__ import annotations

from bench import tasks


def check_noise(options: dict, room: int) -> str:
    """Why noise_vocab_size / frac_noise are refused ("" when fine); `room` = ids left for keys and values."""
    noise_vocab, frac_noise = options["noise_vocab_size"], options["frac_noise"]
    reason = tasks.check_int("noise_vocab_size", noise_vocab, 0)
    if reason:
        return reason
    if isinstance(frac_noise, bool) or not isinstance(frac_noise, (int, float)) or not 0 <= frac_noise < 1:
        return f"frac_noise={frac_noise!r} is out of range (allowed: a number in [0, 1), as in MAD)"
    if frac_noise > 0 and noise_vocab == 0:
        return f"frac_noise={frac_noise} needs noise tokens (allowed: noise_vocab_size >= 1 when frac_noise > 0)"
    if room < 2:
        return (f"vocab_size={options['vocab_size']} leaves {max(room, 0)} ids for keys and values after the "
                f"special and noise tokens (allowed: at least 2: one key and one value)")
    return ""
