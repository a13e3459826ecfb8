"""Converters from each Meta-Dataset source's public download to the official record layout.

One module per source (`omniglot`, `ilsvrc`, `aircraft`, ...) decides the source's classes, their
ids and splits, and which image each record holds (a `plan.SourcePlan`); one engine writes any plan.
"""
