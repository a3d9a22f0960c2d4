"""Published figures our quality runs are held against, each with the setting it came from and its source.

Torch-free and plain data, like the rest of `bench.reporting`. An anchor is one published accuracy of one model on
one task (or the MAD average); `compare(best, mad)` lines each up with our runs of the layout that is that model:

- **Zoology, Figure 2** (Arora, Eyuboglu et al. 2023, "Zoology: Measuring and Improving Recall in Efficient
  Language Models", arXiv 2312.04927): MQAR in its causal form (our `mqar-causal`), 2 layers, vocabulary 8192,
  widths 64–512, (length, pairs) = (64, 4), (128, 8), (256, 16), (512, 64); AdamW (weight decay 0.1), cosine
  schedule, a learning-rate sweep 1e-4…1e-2. Attention ≈ 1.0 at every width and length; at 512 tokens the gated
  convolutions stay ≈ 0 below width 512, and reach BaseConv ≈ 0.70, Hyena ≈ 0.18, H3 ≈ 0.10 at width 512.
- **MAD** (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures", arXiv 2403.17844): the
  average over its six tasks of each task's score (best test accuracy over lr {1e-4, 5e-4, 1e-3} × weight decay
  {0, 0.1} per setting, mean over the task's baseline and harder settings), width 128, 2 blocks of mixer + SwiGLU,
  batch 128, 200 epochs of 12,800 examples. The averages as quoted by the DeltaNet paper (Yang et al. 2024,
  "Parallelizing Linear Transformers with the Delta Rule over Sequence Length", arXiv 2406.06484): Transformer
  74.5, multi-head Hyena 73.2, Mamba 69.3, Hyena 66.0, GLA 60.0.

"Far" is more than `FAR` apart (absolute accuracy): the report then says so in words rather than leaving the
reader to spot it. Our settings are smaller than the papers' (CPU budgets); every row says which setting ours is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.reporting import quality

FAR = 0.2  # absolute accuracy: ours and the published figure differ by more than this -> said in words
MAD = "MAD average"  # the anchors' name for MAD's mean over its six tasks (not a task of ours)

ZOOLOGY = "Zoology (Arora, Eyuboglu et al. 2023, arXiv 2312.04927), Figure 2"
ZOOLOGY_SETTING = ("MQAR (causal), 2 layers, vocabulary 8192, widths 64-512, (length, pairs) (64,4) (128,8) (256,16) "
                   "(512,64), AdamW wd 0.1, cosine, lr sweep 1e-4..1e-2")
MAD_SOURCE = ("MAD (Poli et al. 2024, arXiv 2403.17844), averages as quoted by DeltaNet (Yang et al. 2024, "
              "arXiv 2406.06484)")
MAD_SETTING = ("six tasks, each the mean over its baseline and harder settings of the best test accuracy over "
               "lr {1e-4,5e-4,1e-3} x wd {0,0.1}; width 128, 2 blocks + SwiGLU, batch 128, 200 epochs")


@dataclass(frozen=True)
class Anchor:
    """One published accuracy: `model` on `task` (ours, or MAD) at `setting`, from `source`.

    `layout` is the layout of ours that is that model (None where we have none). The figure holds at the lengths
    `seq_lens` and widths `dims` given (empty: at every one, as "attention ≈ 1.0 at every width and length").
    """

    task: str
    model: str
    layout: str | None
    value: float
    setting: str
    source: str
    seq_lens: tuple[int, ...] = ()
    dims: tuple[int, ...] = ()

    def holds_at(self, seq_len, dim) -> bool:
        return ((not self.seq_lens or int(seq_len) in self.seq_lens)
                and (not self.dims or int(dim) in self.dims))

    def where(self) -> str:
        """The published setting of this figure in a few words."""
        parts = []
        if self.seq_lens:
            parts.append(f"{'/'.join(str(n) for n in self.seq_lens)} tokens")
        if self.dims:
            parts.append(f"width {'/'.join(str(d) for d in self.dims)}")
        return ", ".join(parts) or ("every width and length" if self.task != MAD else "")


ANCHORS: tuple[Anchor, ...] = (
    Anchor("mqar-causal", "Attention", "attention", 1.0, ZOOLOGY_SETTING, ZOOLOGY),
    Anchor("mqar-causal", "Hyena", "hyena", 0.0, ZOOLOGY_SETTING, ZOOLOGY, (512,), (64, 128, 256)),
    Anchor("mqar-causal", "Hyena", "hyena", 0.18, ZOOLOGY_SETTING, ZOOLOGY, (512,), (512,)),
    Anchor("mqar-causal", "BaseConv", None, 0.70, ZOOLOGY_SETTING, ZOOLOGY, (512,), (512,)),
    Anchor("mqar-causal", "H3", None, 0.10, ZOOLOGY_SETTING, ZOOLOGY, (512,), (512,)),
    Anchor(MAD, "Transformer", "attention", 0.745, MAD_SETTING, MAD_SOURCE),
    Anchor(MAD, "multi-head Hyena", None, 0.732, MAD_SETTING, MAD_SOURCE),
    Anchor(MAD, "Mamba", "mamba", 0.693, MAD_SETTING, MAD_SOURCE),
    Anchor(MAD, "Hyena", "hyena", 0.660, MAD_SETTING, MAD_SOURCE),
    Anchor(MAD, "GLA", None, 0.600, MAD_SETTING, MAD_SOURCE),
)

COLUMNS = ["task", "model", "layout", "published", "published_setting", "ours", "our_setting", "difference", "far",
           "note", "source"]


def published_ranks() -> dict[str, int]:
    """MAD's published order of the models quoted (1 = best average)."""
    mad = sorted((a for a in ANCHORS if a.task == MAD), key=lambda a: -a.value)
    return {anchor.model: rank for rank, anchor in enumerate(mad, 1)}


def published_mad() -> dict[str, tuple[str, float, int]]:
    """{our layout: (published model, its MAD average, its published rank)} for the layouts that are such a model."""
    ranks = published_ranks()
    return {a.layout: (a.model, a.value, ranks[a.model]) for a in ANCHORS if a.task == MAD and a.layout}


def our_setting(row) -> str:
    """One best run's setting in a few words: length, width, options, model and budget."""
    options = row["task_options"] or "the generator's defaults"
    return (f"{int(row['seq_len'])} tokens, width {int(row['dim'])}, {options}, {int(row['layers'])} layers, "
            f"{int(row['steps'])} steps of batch {int(row['batch'])}")


def _mad_setting(settings: pd.DataFrame, layout: str) -> str:
    mine = settings[settings["layout"] == layout]
    widths = "/".join(str(int(d)) for d in sorted(mine["dim"].unique()))
    steps = "/".join(str(int(s)) for s in sorted(mine["steps"].unique()))
    grid = int(mine["grid_points"].max()) if len(mine) else 0
    return (f"{mine['task'].nunique()} of 6 tasks, {len(mine)} settings, width {widths}, {steps} steps, "
            f"{grid} grid point(s)")


def compare(best: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every anchor of a task this run trained, beside our figure for it: for a task's anchor, a row per best run of
    its layout at a setting where the figure holds (or one row with no figure of ours, saying why); for MAD, our MAD
    average (`quality.mad_scores` of `table`, the quality table). `far` is True where ours is more than FAR away."""
    rows = []
    tasks = set(best["task"]) if len(best) else set()
    scores = quality.mad_scores(table) if table is not None and len(table) else quality.mad_scores(
        quality.prepare(pd.DataFrame()))
    settings = quality.mad_settings(table) if table is not None and len(table) else pd.DataFrame()
    for anchor in ANCHORS:
        base = dict(task=anchor.task, model=anchor.model, layout=anchor.layout or "", published=anchor.value,
                    published_setting=", ".join(t for t in (anchor.where(), anchor.setting) if t),
                    source=anchor.source)
        if anchor.task == MAD:
            if scores.empty:
                continue
            found = scores[scores["layout"] == anchor.layout] if anchor.layout else scores.iloc[0:0]
            if found.empty:
                rows.append(_missing(base, anchor, "no layout here is this model" if not anchor.layout
                                     else "not run on MAD's tasks here"))
                continue
            score = found.iloc[0]
            note = "" if int(score["tasks"]) == len(quality.MAD_TASKS) else (
                f"mean over {int(score['tasks'])} of the 6 tasks only")
            rows.append(_row(base, float(score[quality.MAD_MEAN]), _mad_setting(settings, anchor.layout), note))
            continue
        if anchor.task not in tasks:
            continue
        mine = best[(best["task"] == anchor.task) & (best["layout"] == (anchor.layout or ""))]
        held = mine[[anchor.holds_at(n, d) for n, d in zip(mine["seq_len"], mine["dim"])]] if len(mine) else mine
        if not anchor.layout:
            rows.append(_missing(base, anchor, "no layout here is this model"))
        elif mine.empty:
            rows.append(_missing(base, anchor, f"{anchor.layout} was not trained on {anchor.task} in this run"))
        elif held.empty:
            rows.append(_missing(base, anchor, f"the figure is for {anchor.where()}; this run trained "
                                               f"{anchor.layout} at none of them"))
        else:
            for _, row in held.sort_values(["seq_len", "dim"]).iterrows():
                rows.append(_row(base, float(row["accuracy"]), our_setting(row), ""))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(base: dict, ours: float, setting: str, note: str) -> dict:
    difference = ours - base["published"]
    return dict(base, ours=ours, our_setting=setting, difference=difference, far=abs(difference) > FAR, note=note)


def _missing(base: dict, anchor: Anchor, why: str) -> dict:
    return dict(base, ours=math.nan, our_setting="", difference=math.nan, far=False, note=why)


def sentences(compared: pd.DataFrame) -> list[str]:
    """One sentence per row where ours is far from the published figure, saying so and at which settings."""
    lines = []
    for _, row in compared[compared["far"].astype(bool)].iterrows():
        direction = "above" if row["difference"] > 0 else "below"
        lines.append(f"{row['layout']} on {row['task']}: ours {row['ours']:.2f} is {abs(row['difference']):.2f} "
                     f"{direction} {row['model']}'s published {row['published']:.2f} (far: more than {FAR:g} apart). "
                     f"Ours: {row['our_setting']}; published: {row['published_setting']}.")
    return lines


def mad_order(scores: pd.DataFrame) -> str:
    """A sentence comparing our MAD order of the layouts that are published models with the published order."""
    known = published_mad()
    ours = [layout for layout in scores["layout"] if layout in known] if len(scores) else []
    if len(ours) < 2:
        return ""
    published = sorted(ours, key=lambda layout: known[layout][2])
    names = " > ".join(f"{layout} ({known[layout][0]})" for layout in published)
    if ours == published:
        return f"Our MAD order of the layouts that are published models matches the published one: {names}."
    return (f"Our MAD order ({' > '.join(ours)}) differs from the published one ({names}); our settings are smaller "
            "(see the anchors table), which can change the order.")
