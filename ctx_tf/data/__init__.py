"""Meta-Dataset data layer: specs, sampler, writer, reader, decoder, pipelines."""
