import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_samples():
    from sista_kit.data.synthetic import generate

    return generate(96, seed=3, image_size=64)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory, small_samples):
    from sista_kit.data.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer([s.report for s in small_samples], out, vocab_size=600)
