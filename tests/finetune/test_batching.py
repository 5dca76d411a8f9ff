import pytest

from finetune.batching import length_sorted_batches


def test_longest_first_ties_in_input_order():
    assert length_sorted_batches([3, 5, 3, 1, 5], 2) == [[1, 4], [0, 2], [3]]
    assert length_sorted_batches([(1, 9), (2, 1), (1, 9)], 2) == [[1, 0], [2]]
    assert length_sorted_batches([], 4) == []


def test_bad_batch_size_names_the_recipe_key():
    with pytest.raises(ValueError, match="eval.batch_size must be >= 1"):
        length_sorted_batches([1], 0, "eval.batch_size")
