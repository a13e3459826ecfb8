"""Episodic training: the outer loop (`loop.Trainer`), its options (`options`, the gin
`Trainer.*` names), the replicated update (`step`), the learning-rate schedule (`schedule`),
validation (`validation`), checkpoints (`checkpointing`), summaries (`summaries`), the training
episodes (`episodes`) and the run's final test (`final_test`)."""
