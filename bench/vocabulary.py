"""The names a model and a unit of work share: where a point is measured (scope), what is timed (mode), and
where a block puts its LayerNorms (norm). Torch-free and import-free, so both `bench.models` (below the
measuring stage) and `bench.measuring.points` (the torch-free vocabulary of the command line) take them from
one place."""

SCOPES = ("mixer", "block", "encoder")  # the mixer alone; one encoder layer; embeddings + layers + masked-LM head
MODES = ("forward", "train")
NORMS = ("post", "pre", "peri")  # bench.models.blocks says what each one computes
