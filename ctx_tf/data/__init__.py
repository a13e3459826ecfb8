"""The Meta-Dataset data layer, one folder per stage.

`dataset_spec/` (the three spec types), `sampling/` (episode descriptions), `reading/`
(records to raw episodes and images), `simclr/` (SimCLR episodes), `writing/` (sources in the
official layout, the conversion engine), `checking/` (the consistency check), `sources/` (one
converter per Meta-Dataset source), `facts/` (the official facts). At the top: the assembly of
episodes and batches (`episode`, `config`, `pipeline`, `iteration`), the built-in `demo`
source and the `writer` and `simclr_preview` commands.
"""
