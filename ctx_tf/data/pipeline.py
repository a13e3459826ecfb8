"""tf.data pipelines of episodes and batches from official-format records.

Episode pipelines yield `(Episode, source_id)`: images float32 `[n, size, size, 3]`, labels
int32 (episode-relative, 0..K-1 in description order), class ids int64 (absolute),
source_id int32. Batch pipelines yield `((images, labels), source_id)` with int64 labels.

The keyword arguments are those of the official `meta_dataset.data.pipeline` functions, except
`seed` (replacing `episode_sampling_seed` / `source_sampling_seed`) and `validate_records`.

Seeding: with `seed` (a non-negative int) every random choice is derived from it -- the
episode-description sampler of each source, a distinct shuffle seed per class stream, the
source choice, the description-cycle order and SimCLR conversion -- so the whole episode
sequence (sources, classes, shot counts and which images) is the same run to run. With
`seed=None` nothing is seeded, as in the official pipeline (samplers draw their seed from
`ctx_tf.data.sampling.RNG`).

Checks done before any graph is built (raising `ReaderError`, a `ValueError`): the source's
records directory exists, every class file of the split exists (one directory listing) and
is big enough for its records (one stat per file: empty files fail here, as `RecordsError`),
the split has classes, the sampler accepts the configuration and its first description can
be read. With `validate_records=True` every class file of the split is counted and its labels
checked up front (`ReaderError` naming the file and both counts); this reads every record of
the split once -- cheap for small sources, minutes for ImageNet.

Iterate pipelines with `iterate(dataset, dataset_specs, split)`: damaged files (truncated,
corrupt, fewer or more records than the spec says) met while reading and bad records met
while decoding (label differing from the file's class, `image` bytes that are not
JPEG/PNG/GIF/BMP; TensorFlow's `InvalidArgumentError` names the file, class id and record
position) then raise `RecordsError` (a `ctx_tf.errors.UserError` and `ValueError`) naming the
class file, its source and `python -m ctx_tf.data.writer --check=<records dir>`. Iterated
directly, the same problems surface as `tf.errors` whose message holds that text.

Decoders come from the gin-configurable `process_episode.support_decoder` /
`process_episode.query_decoder` and `process_batch.batch_decoder` (official names; default
`ImageDecoder()` without augmentation; None keeps the raw record strings).
"""

import numpy as np
import tensorflow as tf

from ctx_tf.data import sampling
from ctx_tf.data.episode import Episode
from ctx_tf.data.iteration import iterate, with_episode_readers  # noqa: F401 (iterate: re-exported)
from ctx_tf.data.reading import decoder as decoder_lib
from ctx_tf.data.reading import episode_reader as reader_lib
from ctx_tf.data.reading.batch_reader import BatchReader
from ctx_tf.data.reading.errors import ReaderError
from ctx_tf.data.simclr import maybe_convert_to_simclr
from ctx_tf.data.simclr.seed_pairs import episode_seed
from ctx_tf.seeds import derive_pipeline_seed

# Pipeline functions have no tensor-dependent Python control flow; AutoGraph would only add
# tracing time.
_no_autograph = tf.autograph.experimental.do_not_convert


# ----------------------------------------------------------------------------- seeds

# The streams of a pipeline: each one's seed is `derive_pipeline_seed(seed, source index (or
# the number of sources, for the source mix), stream)`.
_SAMPLER, _SHUFFLE, _SOURCE_CHOICE, _DESCRIPTION_ORDER, _SIMCLR, _BATCH = range(6)


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
    return int(seed)


def _stream_seed(seed, index, stream):
    """The seed of stream `stream` of source `index` (or of the source mix: index = number of
    sources) in a pipeline seeded with `seed`; None when the pipeline is unseeded."""
    return None if seed is None else derive_pipeline_seed(seed, index, stream)


def sampler_seed(seed, source_index):
    """The seed of the `numpy.random.RandomState` drawing source `source_index`'s episode
    descriptions in a pipeline seeded with `seed` (the official sampler given a RandomState of
    this seed draws the same descriptions)."""
    return derive_pipeline_seed(seed, source_index, _SAMPLER) % 2**32


def _class_seeds(seed, source_index, num_classes):
    if seed is None:
        return None
    base = derive_pipeline_seed(seed, source_index, _SHUFFLE)
    # Consecutive offsets of one random base: distinct by construction.
    return [(base + i) % 2**63 for i in range(num_classes)]


# ----------------------------------------------------------------------------- episodes


def _sample_from_datasets(datasets, weights=None, seed=None):
    """`tf.data.Dataset.sample_from_datasets` (experimental fallback on older TF)."""
    sample = getattr(tf.data.Dataset, "sample_from_datasets", None)
    if sample is None:
        sample = tf.data.experimental.sample_from_datasets
    return sample(datasets, weights=weights, seed=seed)


def _path_lookup(dataset_specs):
    """`fn(source_id, class_ids) -> file paths` (string tensor) for error messages."""
    heads, tails = [], []
    for spec in dataset_specs:
        head, tail = spec.record_path("{}").rsplit("{}", 1)
        heads.append(head)
        tails.append(tail)

    def lookup(source_id, class_ids):
        head = tf.gather(tf.constant(heads), source_id)
        tail = tf.gather(tf.constant(tails), source_id)
        return tf.strings.join([head, tf.strings.as_string(class_ids), tail])

    return lookup


def _decode_all(decoder, strings, class_ids, indices, paths):
    if decoder is None:
        return strings
    if hasattr(decoder, "decode_batch"):
        return decoder.decode_batch(strings, class_ids, indices, paths)
    return tf.map_fn(
        lambda args: decoder(*args), (strings, class_ids, indices, paths),
        fn_output_signature=decoder.out_type)


def _take_actual(strings, class_ids, indices):
    # Placeholders (class id -1) only pad the end of a chunk.
    n = tf.reduce_sum(tf.cast(class_ids >= 0, tf.int32))
    return strings[:n], class_ids[:n], indices[:n]


def _episode_processor(chunk_sizes, support_decoder, query_decoder, path_lookup,
                       simclr_episode_fraction, simclr_seed):
    """`fn(episode_index, (raw, source_id)) -> (Episode, source_id)`."""
    flush_size, support_size, query_size = chunk_sizes

    @_no_autograph
    def process(episode_index, raw_and_source):
        (strings, class_ids, indices), source_id = raw_and_source
        # The flush chunk only advanced the class streams past the end of an epoch.
        support = [t[flush_size:flush_size + support_size] for t in (strings, class_ids, indices)]
        query = [t[flush_size + support_size:] for t in (strings, class_ids, indices)]
        s_strings, s_ids, s_idx = _take_actual(*support)
        q_strings, q_ids, q_idx = _take_actual(*query)
        s_images = _decode_all(support_decoder, s_strings, s_ids, s_idx,
                               path_lookup(source_id, s_ids))
        q_images = _decode_all(query_decoder, q_strings, q_ids, q_idx,
                               path_lookup(source_id, q_ids))
        # Labels by order of first appearance = description order (computed per set, as
        # officially; they agree because both sets list the classes in the same order).
        s_labels = tf.unique(s_ids, out_idx=tf.int32).idx
        q_labels = tf.unique(q_ids, out_idx=tf.int32).idx
        episode = Episode(s_images, s_labels, s_ids, q_images, q_labels, q_ids)
        if simclr_episode_fraction > 0:
            seed = (None if simclr_seed is None
                    else episode_seed(simclr_seed, episode_index))
            episode = maybe_convert_to_simclr(episode, simclr_episode_fraction, seed=seed)
        return episode, source_id

    return process


def _check_simclr(simclr_episode_fraction, support_decoder, query_decoder):
    if not 0.0 <= float(simclr_episode_fraction) <= 1.0:
        raise ValueError(f"simclr_episode_fraction must be in [0, 1], got "
                         f"{simclr_episode_fraction}")
    if simclr_episode_fraction > 0 and not (
            isinstance(support_decoder, decoder_lib.ImageDecoder)
            and isinstance(query_decoder, decoder_lib.ImageDecoder)):
        raise ValueError("simclr_episode_fraction > 0 needs decoded images: the support and "
                         "query decoders must be ImageDecoders")


def _check_pool(pool):
    if pool is not None:
        raise NotImplementedError(
            f"pool={pool!r}: example-level splits (pools) are not supported, as officially")


def _source_reader(dataset_spec, use_dag_ontology, use_bilevel_ontology, split,
                   episode_descr_config, shuffle_buffer_size, num_to_take,
                   ignore_hierarchy_probability, seed, source_index, validate_records):
    """`(raw episode dataset, chunk sizes)` of one source."""
    classes = reader_lib.check_split_files(dataset_spec, split, validate_records, num_to_take)
    where = f"source {dataset_spec.name!r} split {reader_lib.split_name(split)}"
    sampler_rng = None if seed is None else np.random.RandomState(
        sampler_seed(seed, source_index))
    try:
        sampler = sampling.EpisodeDescriptionSampler(
            reader_lib.limited_spec(dataset_spec, num_to_take), split, episode_descr_config,
            use_dag_hierarchy=use_dag_ontology, use_bilevel_hierarchy=use_bilevel_ontology,
            ignore_hierarchy_probability=ignore_hierarchy_probability, rng=sampler_rng)
        order_seed = _stream_seed(seed, source_index, _DESCRIPTION_ORDER)
        order_rng = np.random.RandomState(None if order_seed is None else order_seed % 2**32)
        descriptions = sampling.DescriptionSource(
            sampler, episode_descr_config.episode_description_switch_frequency,
            episode_descr_config.num_unique_descriptions, rng=order_rng)
    except ReaderError:
        raise
    except (ValueError, RuntimeError) as e:
        raise ReaderError(f"{where}: cannot sample episodes with {episode_descr_config!r}: "
                          f"{e}") from e
    chunk_sizes = tuple(sampler.compute_chunk_sizes())
    episode_reader = reader_lib.EpisodeReader(
        dataset_spec, split, shuffle_buffer_size, num_to_take,
        class_seeds=_class_seeds(seed, source_index, len(classes)))
    return episode_reader, episode_reader.episode_dataset(descriptions, chunk_sizes), chunk_sizes


def make_one_source_episode_pipeline(dataset_spec, use_dag_ontology, use_bilevel_ontology,
                                     split, episode_descr_config, pool=None,
                                     shuffle_buffer_size=None, read_buffer_size_bytes=None,
                                     num_prefetch=0, image_size=None, num_to_take=None,
                                     ignore_hierarchy_probability=0.0,
                                     simclr_episode_fraction=0.0, seed=None,
                                     validate_records=False):
    """Episodes of one source: a dataset of `(Episode, source_id=0)`.

    Args:
      dataset_spec: the source's spec (`load_dataset_spec(<records_root>/<name>)`).
      use_dag_ontology, use_bilevel_ontology: class sampling (see `use_ontologies`).
      split: `Split` of the classes.
      episode_descr_config: `EpisodeDescriptionConfig`.
      pool: must be None (example-level pools are unsupported, as officially).
      shuffle_buffer_size: per-class shuffle buffer (None or 0: no shuffling).
      read_buffer_size_bytes, num_prefetch: accepted as in the official signature; records
        are read by offset (see `ctx_tf.data.reading.episode_reader`), so they change nothing.
      image_size: side of the decoded images (`DataConfig.image_height`).
      num_to_take: read only this many records per class (None: all); the sampler also
        sees the reduced counts.
      ignore_hierarchy_probability: fraction of episodes sampled ignoring the hierarchy.
      simclr_episode_fraction: fraction of episodes converted to SimCLR episodes.
      seed: None (unseeded, official behaviour) or an int; see the module docstring.
      validate_records: count every class file (and check labels) before building.
    """
    _check_pool(pool)
    seed = _check_seed(seed)
    support_decoder, query_decoder = decoder_lib.episode_decoders(image_size)
    _check_simclr(simclr_episode_fraction, support_decoder, query_decoder)
    episode_reader, raw, chunk_sizes = _source_reader(
        dataset_spec, use_dag_ontology, use_bilevel_ontology, split, episode_descr_config,
        shuffle_buffer_size, -1 if num_to_take is None else num_to_take,
        ignore_hierarchy_probability, seed, 0, validate_records)
    process = _episode_processor(
        chunk_sizes, support_decoder, query_decoder, _path_lookup([dataset_spec]),
        simclr_episode_fraction, _stream_seed(seed, 0, _SIMCLR))
    dataset = tf.data.Dataset.zip((raw, tf.data.Dataset.from_tensors(0).repeat()))
    dataset = dataset.enumerate().map(process)
    return with_episode_readers(dataset.prefetch(1), [episode_reader])


def make_multisource_episode_pipeline(dataset_spec_list, use_dag_ontology_list,
                                      use_bilevel_ontology_list, split, episode_descr_config,
                                      pool=None, shuffle_buffer_size=None,
                                      read_buffer_size_bytes=None, num_prefetch=0,
                                      image_size=None, num_to_take=None,
                                      simclr_episode_fraction=0.0, seed=None,
                                      validate_records=False):
    """Episodes from several sources, each episode from one source drawn uniformly at random.

    Yields `(Episode, source_id)`, source_id = index in `dataset_spec_list`. Arguments as in
    `make_one_source_episode_pipeline`, per source where a list; `num_to_take` is None or one
    value per source. As officially, there is no `ignore_hierarchy_probability` here.
    """
    _check_pool(pool)
    seed = _check_seed(seed)
    support_decoder, query_decoder = decoder_lib.episode_decoders(image_size)
    _check_simclr(simclr_episode_fraction, support_decoder, query_decoder)
    n = len(dataset_spec_list)
    if n == 0:
        raise ValueError("dataset_spec_list is empty")
    if len(use_dag_ontology_list) != n or len(use_bilevel_ontology_list) != n:
        raise ValueError(
            f"{n} sources but {len(use_dag_ontology_list)} use_dag_ontology and "
            f"{len(use_bilevel_ontology_list)} use_bilevel_ontology flags")
    if num_to_take is not None and len(num_to_take) != n:
        raise ValueError(f"num_to_take has {len(num_to_take)} entries for {n} sources")
    takes = [-1] * n if num_to_take is None else [
        -1 if t is None else t for t in num_to_take]
    sources, chunk_sizes, episode_readers = [], None, []
    for i, spec in enumerate(dataset_spec_list):
        episode_reader, raw, sizes = _source_reader(
            spec, use_dag_ontology_list[i], use_bilevel_ontology_list[i], split,
            episode_descr_config, shuffle_buffer_size, takes[i], 0.0, seed, i,
            validate_records)
        if chunk_sizes is not None and sizes != chunk_sizes:
            raise ValueError(f"sources have different episode chunk sizes: {chunk_sizes} and "
                             f"{sizes} ({spec.name})")
        chunk_sizes = sizes
        episode_readers.append(episode_reader)
        sources.append(tf.data.Dataset.zip((raw, tf.data.Dataset.from_tensors(i).repeat())))
    dataset = _sample_from_datasets(sources, seed=_stream_seed(seed, n, _SOURCE_CHOICE))
    process = _episode_processor(
        chunk_sizes, support_decoder, query_decoder, _path_lookup(dataset_spec_list),
        simclr_episode_fraction, _stream_seed(seed, n, _SIMCLR))
    return with_episode_readers(dataset.enumerate().map(process).prefetch(1), episode_readers)


# ----------------------------------------------------------------------------- batches


def _batch_processor(decoder, path_lookup):
    @_no_autograph
    def process(raw, source_id):
        strings, labels, class_ids, indices = raw
        images = _decode_all(decoder, strings, class_ids, indices,
                             path_lookup(source_id, class_ids))
        return (images, labels), source_id

    return process


def _batch_source(dataset_spec, split, batch_size, shuffle_buffer_size, num_to_take,
                  label_offset, seed, source_index, validate_records):
    """`(BatchReader, raw batch dataset)` of one source."""
    reader_lib.check_split_files(dataset_spec, split, validate_records, num_to_take)
    batch_reader = BatchReader(dataset_spec, split, shuffle_buffer_size, num_to_take)
    return batch_reader, batch_reader.batch_dataset(
        batch_size, label_offset=label_offset, seed=_stream_seed(seed, source_index, _BATCH))


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def make_one_source_batch_pipeline(dataset_spec, split, batch_size, pool=None,
                                   shuffle_buffer_size=None, read_buffer_size_bytes=None,
                                   num_prefetch=0, image_size=None, num_to_take=None,
                                   seed=None, validate_records=False):
    """Batches over every class of one split: `((images, labels), source_id=0)`.

    Each epoch reads every record once; classes are interleaved in proportion to their size
    and mixed in one `shuffle_buffer_size` buffer; the last batch of an epoch may be smaller.
    Labels (int64) are class ids counted from the split's first class (= absolute ids for
    TRAIN, as officially).
    """
    _check_pool(pool)
    _check_batch_size(batch_size)
    seed = _check_seed(seed)
    batch_reader, raw = _batch_source(dataset_spec, split, batch_size, shuffle_buffer_size,
                                      -1 if num_to_take is None else num_to_take, 0, seed, 0,
                                      validate_records)
    process = _batch_processor(decoder_lib.batch_decoder_for(image_size),
                               _path_lookup([dataset_spec]))
    dataset = tf.data.Dataset.zip((raw, tf.data.Dataset.from_tensors(0).repeat()))
    return with_episode_readers(dataset.map(process).prefetch(1), [batch_reader])


def make_multisource_batch_pipeline(dataset_spec_list, split, batch_size,
                                    add_dataset_offset=True, pool=None,
                                    shuffle_buffer_size=None, read_buffer_size_bytes=None,
                                    num_prefetch=0, image_size=None, num_to_take=None,
                                    seed=None, validate_records=False):
    """Batches from several sources, each batch from one source drawn uniformly at random.

    With `add_dataset_offset`, labels of source k are shifted by the number of `split`
    classes of sources 0..k-1, so labels are unique across sources.
    """
    _check_pool(pool)
    _check_batch_size(batch_size)
    seed = _check_seed(seed)
    n = len(dataset_spec_list)
    if n == 0:
        raise ValueError("dataset_spec_list is empty")
    if num_to_take is not None and len(num_to_take) != n:
        raise ValueError(f"num_to_take has {len(num_to_take)} entries for {n} sources")
    takes = [-1] * n if num_to_take is None else [-1 if t is None else t for t in num_to_take]
    sources, offset, batch_readers = [], 0, []
    for i, spec in enumerate(dataset_spec_list):
        batch_reader, raw = _batch_source(spec, split, batch_size, shuffle_buffer_size,
                                          takes[i], offset, seed, i, validate_records)
        batch_readers.append(batch_reader)
        sources.append(tf.data.Dataset.zip((raw, tf.data.Dataset.from_tensors(i).repeat())))
        if add_dataset_offset:
            offset += len(spec.get_classes(split))
    dataset = _sample_from_datasets(sources, seed=_stream_seed(seed, n, _SOURCE_CHOICE))
    process = _batch_processor(decoder_lib.batch_decoder_for(image_size),
                               _path_lookup(dataset_spec_list))
    return with_episode_readers(dataset.map(process).prefetch(1), batch_readers)
