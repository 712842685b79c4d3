"""zoo_train.nn_scratch against torch's own layers: values, gradients, init, export."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

import zoo_train.nn_scratch as ns

ATOL = 1e-5
SRC_DIR = Path(ns.__file__).resolve().parent


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0.0)


def gradcheck_module(module: nn.Module, *inputs: torch.Tensor, fast: bool = False) -> None:
    """gradcheck w.r.t. the inputs and every parameter, in float64 (``fast``: random projections)."""
    module = module.double()
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]
    inputs = tuple(x.detach().double().requires_grad_(True) for x in inputs)
    n_in = len(inputs)

    def fn(*args: torch.Tensor):
        return functional_call(module, dict(zip(names, args[n_in:], strict=True)), args[:n_in])

    assert torch.autograd.gradcheck(fn, inputs + tuple(params), eps=1e-6, atol=1e-5, fast_mode=fast)


# ---------------------------------------------------------------------------- feed-forward


CONV_CASES = [
    # in, out, kernel, stride, padding, H, W, bias
    (1, 1, 1, 1, 0, 5, 5, True),
    (3, 4, 3, 1, 1, 8, 11, True),
    (2, 5, 3, 2, 0, 9, 7, False),
    (4, 3, 5, 2, 2, 12, 10, True),
    (2, 3, 4, 3, 1, 10, 13, True),
    (3, 2, (2, 3), (1, 2), (0, 1), 7, 9, True),
]


@pytest.mark.parametrize("cin,cout,k,s,p,h,w,bias", CONV_CASES)
def test_conv2d_matches_torch(cin, cout, k, s, p, h, w, bias) -> None:
    ours = ns.Conv2D(cin, cout, k, stride=s, padding=p, bias=bias)
    ref = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias)
    ref.load_state_dict(ours.state_dict())  # same names and shapes
    x = torch.randn(2, cin, h, w)
    y = ours(x)
    assert y.shape == ref(x).shape
    assert_close(y, ref(x))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6)])
def test_linear_matches_torch(shape, bias) -> None:
    ours = ns.Linear(6, 5, bias=bias)
    ref = nn.Linear(6, 5, bias=bias)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(*shape)
    assert_close(ours(x), ref(x))


@pytest.mark.parametrize(
    "ours,ref",
    [(ns.ReLU(), torch.relu), (ns.Sigmoid(), torch.sigmoid), (ns.Tanh(), torch.tanh)],
    ids=["relu", "sigmoid", "tanh"],
)
def test_activation_matches_torch(ours: nn.Module, ref: Callable) -> None:
    x = torch.cat([torch.randn(1000) * 5, torch.tensor([0.0, -0.0, 1e-8, -1e-8, 50.0, -50.0, 1e4, -1e4])])
    x.requires_grad_(True)
    y = ours(x)
    assert_close(y, ref(x))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()  # no inf/inf from exp overflow at +-1e4


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_torch(dim: int) -> None:
    x = torch.randn(3, 4, 5) * 3
    y = ns.Softmax(dim)(x)
    assert_close(y, torch.softmax(x, dim))
    assert_close(y.sum(dim), torch.ones_like(y.sum(dim)))


def test_softmax_stable_for_large_inputs() -> None:
    x = torch.tensor([[1000.0, 1001.0, 999.0], [-1e4, -1e4 + 1, -1e4 - 1], [1e30, 0.0, -1e30]])
    y = ns.Softmax(-1)(x)
    assert torch.isfinite(y).all()
    assert_close(y, torch.softmax(x, -1))


def test_dropout_eval_is_identity() -> None:
    drop = ns.Dropout(0.5).eval()
    x = torch.randn(100)
    assert torch.equal(drop(x), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_train_zeroes_p_and_scales(p: float) -> None:
    drop = ns.Dropout(p).train()
    x = torch.rand(200_000) + 0.5  # strictly positive, so zeros are dropped elements
    y = drop(x)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 0.01
    assert_close(y[~dropped], x[~dropped] / (1 - p))


def test_dropout_edge_probabilities() -> None:
    x = torch.randn(50)
    assert torch.equal(ns.Dropout(0.0).train()(x), x)
    assert torch.equal(ns.Dropout(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError):
        ns.Dropout(1.5)


@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (2, 3), (1, 2)])
def test_flatten_matches_torch(start: int, end: int) -> None:
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(ns.Flatten(start, end)(x), torch.flatten(x, start, end))


@pytest.mark.parametrize(
    "k,s,h,w",
    [(2, None, 8, 8), (2, None, 9, 7), (3, 2, 11, 8), (3, 1, 6, 9), ((2, 3), (1, 2), 7, 10)],
)
def test_maxpool2d_matches_torch(k, s, h, w) -> None:
    x = torch.randn(2, 3, h, w)
    assert torch.equal(ns.MaxPool2D(k, s)(x), F.max_pool2d(x, k, s))


def test_default_init_matches_torch() -> None:
    # Same init functions in the same parameter order consume the RNG identically.
    pairs = [
        (lambda: ns.Linear(7, 4), lambda: nn.Linear(7, 4)),
        (lambda: ns.Conv2D(3, 5, 3), lambda: nn.Conv2d(3, 5, 3)),
        (lambda: ns.GRUCell(4, 6), lambda: nn.GRUCell(4, 6)),
        (lambda: ns.LSTMCell(4, 6), lambda: nn.LSTMCell(4, 6)),
    ]
    for make_ours, make_ref in pairs:
        torch.manual_seed(1)
        ours = make_ours()
        torch.manual_seed(1)
        ref = make_ref()
        for (name, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
            assert torch.equal(a, b), (type(ours).__name__, name)
    conv = ns.Conv2D(3, 5, 3)
    assert conv.weight.abs().max() <= 1 / math.sqrt(27)
    gru = ns.GRU(4, 16, num_layers=2)
    assert all(p.abs().max() <= 0.25 for p in gru.parameters())


# ---------------------------------------------------------------------------- recurrent


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_gru_cell_matches_torch(bias: bool, with_state: bool) -> None:
    ours = ns.GRUCell(5, 7, bias=bias)
    ref = nn.GRUCell(5, 7, bias=bias)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5)
    h = torch.randn(3, 7) if with_state else None
    assert_close(ours(x, h), ref(x, h))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_lstm_cell_matches_torch(bias: bool, with_state: bool) -> None:
    ours = ns.LSTMCell(5, 7, bias=bias)
    ref = nn.LSTMCell(5, 7, bias=bias)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5)
    state = (torch.randn(3, 7), torch.randn(3, 7)) if with_state else None
    for a, b in zip(ours(x, state), ref(x, state), strict=True):
        assert_close(a, b)


RNN_CASES = [
    # num_layers, bias, batch_first, with_state, dropout (eval mode, so inactive)
    (1, True, True, False, 0.0),
    (2, True, True, True, 0.0),
    (3, False, True, True, 0.0),
    (2, True, False, True, 0.0),
    (2, True, True, True, 0.3),
]


@pytest.mark.parametrize("num_layers,bias,batch_first,with_state,dropout", RNN_CASES)
def test_gru_matches_torch(num_layers, bias, batch_first, with_state, dropout) -> None:
    ref = nn.GRU(4, 6, num_layers=num_layers, bias=bias, batch_first=batch_first, dropout=dropout).eval()
    ours = ns.GRU.load_from_torch(ref)
    assert not ours.training
    x = torch.randn(3, 5, 4) if batch_first else torch.randn(5, 3, 4)
    h0 = torch.randn(num_layers, 3, 6) if with_state else None
    y, h = ours(x, h0)
    y_ref, h_ref = ref(x, h0)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


@pytest.mark.parametrize("num_layers,bias,batch_first,with_state,dropout", RNN_CASES)
def test_lstm_matches_torch(num_layers, bias, batch_first, with_state, dropout) -> None:
    ref = nn.LSTM(4, 6, num_layers=num_layers, bias=bias, batch_first=batch_first, dropout=dropout).eval()
    ours = ns.LSTM.load_from_torch(ref)
    x = torch.randn(3, 5, 4) if batch_first else torch.randn(5, 3, 4)
    s0 = (torch.randn(num_layers, 3, 6), torch.randn(num_layers, 3, 6)) if with_state else None
    y, (h, c) = ours(x, s0)
    y_ref, (h_ref, c_ref) = ref(x, s0)
    assert_close(y, y_ref)
    assert_close(h, h_ref)
    assert_close(c, c_ref)


def test_stacked_parameter_names_follow_cells() -> None:
    gru = ns.GRU(4, 6, num_layers=2)
    assert isinstance(gru.cells, nn.ModuleList)
    assert set(gru.state_dict()) == {
        f"cells.{k}.{n}_{kind}" for k in range(2) for n in ("weight", "bias") for kind in ("ih", "hh")
    }
    with pytest.raises(ValueError):
        ns.GRU.load_from_torch(nn.GRU(4, 6, bidirectional=True))
    with pytest.raises(ValueError):
        ns.LSTM.load_from_torch(nn.LSTM(4, 6, proj_size=3))


def test_rnn_dropout_between_layers_in_training() -> None:
    gru = ns.GRU(4, 6, num_layers=2, dropout=0.5)
    x = torch.randn(3, 5, 4)
    y_eval, _ = gru.eval()(x)
    y_train, _ = gru.train()(x)
    assert not torch.allclose(y_eval, y_train)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: ns.Conv2D(2, 3, 3, stride=2, padding=1), (2, 2, 5, 6)),
        (lambda: ns.Conv2D(2, 2, (2, 3), bias=False), (1, 2, 4, 5)),
        (lambda: ns.Linear(4, 3), (2, 4)),
        (lambda: ns.ReLU(), (3, 4)),
        (lambda: ns.Sigmoid(), (3, 4)),
        (lambda: ns.Tanh(), (3, 4)),
        (lambda: ns.Softmax(-1), (3, 4)),
        (lambda: ns.MaxPool2D(2), (1, 2, 4, 4)),
    ],
    ids=["conv", "conv-nobias", "linear", "relu", "sigmoid", "tanh", "softmax", "maxpool"],
)
def test_gradcheck_feedforward(make: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    gradcheck_module(make(), torch.randn(*shape))


def test_gradcheck_cells() -> None:
    x = torch.randn(2, 3)
    gradcheck_module(ns.GRUCell(3, 4), x, torch.randn(2, 4))
    lstm = ns.LSTMCell(3, 4).double()

    class Flat(nn.Module):  # gradcheck wants tensor inputs, not a tuple state
        def __init__(self) -> None:
            super().__init__()
            self.cell = lstm

        def forward(self, x, h, c):
            return self.cell(x, (h, c))

    gradcheck_module(Flat(), x, torch.randn(2, 4), torch.randn(2, 4))


def test_gradcheck_stacked() -> None:
    x = torch.randn(2, 2, 3)  # N=2, T=2
    # fast_mode: the full Jacobian over ~250 parameters costs seconds; projections suffice here.
    gradcheck_module(ns.GRU(3, 4, num_layers=2), x, torch.randn(2, 2, 4), fast=True)

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = ns.LSTM(3, 4, num_layers=2)

        def forward(self, x, h, c):
            y, (h, c) = self.lstm(x, (h, c))
            return y, h, c

    gradcheck_module(Flat(), x, torch.randn(2, 2, 4), torch.randn(2, 2, 4), fast=True)


# ---------------------------------------------------------------------------- source hygiene

FORBIDDEN = [
    "nn.Conv2d",
    "nn.Linear",
    "nn.GRU",
    "nn.LSTM",
    "F.conv2d",
    "F.linear",
    "torch.conv2d",
    "nn.functional.conv",
    "nn.ReLU",
    "nn.Sigmoid",
    "nn.Tanh",
    "nn.Softmax",
    "nn.Dropout",
    "nn.MaxPool",
    "F.max_pool",
    "F.softmax",
    "F.dropout",
]


def test_sources_use_no_builtin_layers() -> None:
    files = sorted(SRC_DIR.glob("*.py"))
    assert files
    hits = [
        f"{f.name}:{i}: {name}"
        for f in files
        for i, line in enumerate(f.read_text().splitlines(), 1)
        for name in FORBIDDEN
        if name in line
    ]
    assert not hits, hits


# ---------------------------------------------------------------------------- export


def _conv_stack() -> nn.Module:
    return nn.Sequential(
        ns.Conv2D(3, 8, 3, padding=1),
        ns.ReLU(),
        ns.MaxPool2D(2),
        ns.Conv2D(8, 4, 3, stride=2, padding=1),
        ns.Tanh(),
        ns.Flatten(),
        ns.Linear(4 * 2 * 3, 10),
        ns.Softmax(-1),
    ).eval()


class _GRUStep(nn.Module):
    def __init__(self, rnn: ns.GRU) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rnn.step(x, h)


class _LSTMStep(nn.Module):
    def __init__(self, rnn: ns.LSTM) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        out, (h, c) = self.rnn.step(x, (h, c))
        return out, h, c


# All inputs share one batch Dim; the exporter notes it keeps a single name for it.
EXPORT_WARNINGS = pytest.mark.filterwarnings("ignore:.*axis name.*shares the same shape constraints:UserWarning")


def _export_and_compare(module: nn.Module, make_inputs: Callable[[int], tuple], batch_axes: list[int]) -> None:
    """Export with a dynamic batch dim, then compare onnxruntime with torch at batch 1 and 3."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    batch = torch.export.Dim("batch", min=1, max=4096)
    args = make_inputs(2)  # not 1: the exporter would specialise a size-1 dim
    dynamic_shapes = tuple({axis: batch} for axis in batch_axes)
    program = torch.onnx.export(module, args, dynamo=True, external_data=False, dynamic_shapes=dynamic_shapes, verbose=False)
    assert program is not None  # torch.onnx.export returns None only without dynamo
    sess = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for n in (1, 3):
        inputs = make_inputs(n)
        got = sess.run(None, {name: t.numpy() for name, t in zip(names, inputs, strict=True)})
        with torch.no_grad():
            want = module(*inputs)
        want = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_close(torch.from_numpy(g), w)


@EXPORT_WARNINGS
def test_onnx_export_conv_stack() -> None:
    _export_and_compare(_conv_stack(), lambda n: (torch.randn(n, 3, 8, 12),), [0])


@EXPORT_WARNINGS
def test_onnx_export_gru_step() -> None:
    step = _GRUStep(ns.GRU(5, 7, num_layers=2)).eval()
    _export_and_compare(step, lambda n: (torch.randn(n, 5), torch.randn(2, n, 7)), [0, 1])


@EXPORT_WARNINGS
def test_onnx_export_lstm_step() -> None:
    step = _LSTMStep(ns.LSTM(5, 7, num_layers=2)).eval()
    _export_and_compare(step, lambda n: (torch.randn(n, 5), torch.randn(2, n, 7), torch.randn(2, n, 7)), [0, 1, 1])


JIT_DEPRECATED = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")


@JIT_DEPRECATED
def test_jit_trace_conv_stack() -> None:
    net = _conv_stack()
    traced = torch.jit.trace(net, torch.randn(2, 3, 8, 12))
    for n in (1, 3):
        x = torch.randn(n, 3, 8, 12)
        assert_close(traced(x), net(x))


@JIT_DEPRECATED
def test_jit_trace_gru_step() -> None:
    step = _GRUStep(ns.GRU(5, 7, num_layers=2)).eval()
    traced = torch.jit.trace(step, (torch.randn(2, 5), torch.randn(2, 2, 7)))
    x, h = torch.randn(3, 5), torch.randn(2, 3, 7)
    for a, b in zip(traced(x, h), step(x, h), strict=True):
        assert_close(a, b)
