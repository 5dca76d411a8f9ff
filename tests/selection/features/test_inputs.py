import pytest
import torch

from selection.features.inputs import capture


class PairOut(torch.nn.Module):
    """Returns a tuple like a decoder layer does: ``(hidden, extra)``."""

    def forward(self, x):
        return x * 2, "extra"


def test_capture_input_takes_first_positional_argument():
    linears = [torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)]
    x = torch.tensor([[1.0, -1.0]])
    with capture(linears, "input") as captured:
        hidden = linears[1](linears[0](x))
    assert torch.equal(captured[0], x)
    assert torch.equal(captured[1], linears[0](x))
    assert hidden.shape == (1, 2)


def test_capture_output_unwraps_tuple_and_keeps_plain_tensor():
    modules = [PairOut(), torch.nn.Identity()]
    x = torch.tensor([[3.0]])
    with capture(modules, "output") as captured:
        modules[0](x)
        modules[1](x)
    assert torch.equal(captured[0], torch.tensor([[6.0]]))
    assert torch.equal(captured[1], x)


@pytest.mark.parametrize("what", ["input", "output"])
def test_capture_removes_hooks_on_exit_even_after_error(what):
    linear = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="boom"), capture([linear], what):
        raise RuntimeError("boom")
    assert not linear._forward_pre_hooks and not linear._forward_hooks


def test_capture_rejects_unknown_what():
    with pytest.raises(ValueError, match="'input' or 'output'"), capture([torch.nn.Identity()], "inputs"):
        pass
