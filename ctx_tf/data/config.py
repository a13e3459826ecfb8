"""Reading and decoding settings shared by every pipeline (`DataConfig`)."""

import gin


@gin.configurable
class DataConfig:
    """Image size and per-class reading buffers; the official gin names.

    Args:
      image_height: side of the square images the decoder produces (84 by default as in
        `setups/data_config_common.gin`; the CTX gin files bind 224).
      shuffle_buffer_size: per-class shuffle buffer; each class file gets a buffer of
        `min(num_images, shuffle_buffer_size)` records. 0 disables shuffling.
      read_buffer_size_bytes, num_prefetch: the official names, accepted and checked; they
        change nothing, since records are read by offset (`ctx_tf.data.reading.class_files`).
    """

    def __init__(self, image_height=84, shuffle_buffer_size=1000,
                 read_buffer_size_bytes=1048576, num_prefetch=64):
        for name, value, low in (("image_height", image_height, 1),
                                 ("shuffle_buffer_size", shuffle_buffer_size, 0),
                                 ("read_buffer_size_bytes", read_buffer_size_bytes, 1),
                                 ("num_prefetch", num_prefetch, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"DataConfig.{name} must be an integer >= {low}, got {value!r}")
        self.image_height = image_height
        self.shuffle_buffer_size = shuffle_buffer_size
        self.read_buffer_size_bytes = read_buffer_size_bytes
        self.num_prefetch = num_prefetch

    def pipeline_kwargs(self):
        """The keyword arguments the pipeline functions take from this config."""
        return dict(image_size=self.image_height,
                    shuffle_buffer_size=self.shuffle_buffer_size,
                    read_buffer_size_bytes=self.read_buffer_size_bytes,
                    num_prefetch=self.num_prefetch)

    def __repr__(self):
        return (f"DataConfig(image_height={self.image_height}, "
                f"shuffle_buffer_size={self.shuffle_buffer_size}, "
                f"read_buffer_size_bytes={self.read_buffer_size_bytes}, "
                f"num_prefetch={self.num_prefetch})")
