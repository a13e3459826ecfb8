"""Episodic training: the loop (`loop`), the replicated update (`step`), the learning-rate
schedule (`schedule`), the training episodes (`episodes`) and the run's final test
(`final_test`). `Trainer` is the gin-configured entry point with the official names."""
