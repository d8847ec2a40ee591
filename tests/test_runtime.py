import os

from matssl_featurizers.runtime import idle_cores, torch_threads


def test_idle_cores_counts_the_cores_this_process_may_use():
    cores = len(os.sched_getaffinity(0))
    assert 1 <= idle_cores(interval=0.2) <= cores


def test_torch_threads_sets_and_restores():
    import torch

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
