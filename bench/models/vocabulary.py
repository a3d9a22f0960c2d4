"""The names a model and a unit of work share: where a point is measured (scope), what is timed (mode), and
where a block puts its LayerNorms (norm). The models own them; this module is torch-free and import-free, so
`bench.measuring.points` (the torch-free vocabulary of the command line) reads them from here without building
a model (`bench.models` loads its torch modules only when one of their names is asked for)."""

SCOPES = ("mixer", "block", "encoder")  # the mixer alone; one encoder layer; embeddings + layers + masked-LM head
MODES = ("forward", "train")
NORMS = ("post", "pre", "peri")  # bench.models.blocks says what each one computes
