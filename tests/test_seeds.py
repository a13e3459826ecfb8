"""The seed derivation: both widths fixed by the parent seed and the keys, values that never
change (recorded episodes and evaluation episodes depend on them)."""

import pytest

from ctx_tf.seeds import derive_pipeline_seed, derive_seed


def test_derived_seeds_keep_their_values():
    assert derive_seed(7, 4) == 3335713882
    assert derive_seed(0, "omniglot") == 3009576705
    assert derive_pipeline_seed(0, 0, 1) == 8227443069378110354
    assert derive_pipeline_seed(1234, 2, 4) == 3368925912878039645


def test_the_two_widths_are_one_derivation():
    for seed, keys in ((0, ()), (5, (1, 2)), (2**40, ("dtd", 3))):
        narrow, wide = derive_seed(seed, *keys), derive_pipeline_seed(seed, *keys)
        assert 0 <= narrow < 2**32 and 0 <= wide < 2**63
        # The wide seed's high bits are the narrow seed's: the same first word.
        assert wide >> 32 == narrow >> 1


@pytest.mark.parametrize("seed", [-1, 1.5, True, "7"])
def test_a_bad_seed_is_refused(seed):
    for derive in (derive_seed, derive_pipeline_seed):
        with pytest.raises(ValueError, match="non-negative integer"):
            derive(seed, 1)
