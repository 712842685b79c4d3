"""GRU and LSTM cells and stacked layers built from matmuls and elementwise ops.

Parameter layout matches torch's own cells (weight_ih [G*H, in], weight_hh [G*H, H],
bias_ih [G*H], bias_hh [G*H]; gates r,z,n for the GRU and i,f,g,o for the LSTM), so
weights copy over unchanged. The stacked layers keep one cell per layer in
``cells`` and run time in a Python loop over ``step``; ``step`` is what gets
exported as a single-time-step graph.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn as nn
from torch import Tensor

from . import functional as ops
from .layers import Dropout

__all__ = ["GRU", "LSTM", "GRUCell", "LSTMCell", "LSTMState", "gru_gates", "lstm_gates", "torch_layer_weights"]

LSTMState = tuple[Tensor, Tensor]


def gru_gates(
    x: Tensor, h: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None
) -> Tensor:
    """The activated GRU gates [3, ..., H] for inputs x [..., in] and previous states h [..., H] (torch's weight
    layout): reset r, update z (sigmoids) and the candidate n (tanh). Any leading axes, e.g. [N, T] for a whole
    sequence whose previous states are known."""
    gi = ops.linear(x, weight_ih, bias_ih)
    gh = ops.linear(h, weight_hh, bias_hh)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = ops.sigmoid(i_r + h_r)
    z = ops.sigmoid(i_z + h_z)
    # The reset gate multiplies (W_hn h + b_hn), bias included: torch's (cuDNN) variant.
    n = ops.tanh(i_n + r * h_n)
    return torch.stack([r, z, n])


def torch_layer_weights(rnn: nn.RNNBase, layer: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer of torch's own LSTM or GRU layer, for :func:`lstm_gates` /
    :func:`gru_gates` (the biases None where it has none)."""
    found = [getattr(rnn, name) for name in rnn._flat_weights_names if name.endswith(f"_l{layer}")]
    return found[0], found[1], found[2] if rnn.bias else None, found[3] if rnn.bias else None


def lstm_gates(
    x: Tensor, h: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None
) -> Tensor:
    """The activated LSTM gates [4, ..., H] for inputs x [..., in] and previous states h [..., H] (torch's weight
    layout): input i, forget f (sigmoids), cell candidate g (tanh), output o (sigmoid). Any leading axes."""
    gates = ops.linear(x, weight_ih, bias_ih) + ops.linear(h, weight_hh, bias_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    return torch.stack([ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)])


class _CellBase(nn.Module):
    """Parameters shared by the GRU and LSTM cells; ``gates`` is 3 (GRU) or 4 (LSTM)."""

    gates: int
    gate_names: tuple[str, ...]  # what gates_of returns, in order

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default for recurrent weights: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class GRUCell(_CellBase):
    """One GRU step: h' = (1 - z) * n + z * h."""

    gates = 3

    gate_names = ("reset", "update", "candidate")

    def gates_of(self, x: Tensor, h: Tensor) -> Tensor:
        """The activated gates [3, N, H]: reset r, update z (sigmoids) and the candidate n (tanh)."""
        return gru_gates(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        """x [N, in], h [N, H] (zeros if None) -> h' [N, H]."""
        h = self._zeros(x) if state is None else state
        _r, z, n = self.gates_of(x, h).unbind(0)  # unbind, not iteration: traces without a warning
        return (1.0 - z) * n + z * h


class LSTMCell(_CellBase):
    """One LSTM step: c' = f * c + i * g, h' = o * tanh(c')."""

    gates = 4

    gate_names = ("input", "forget", "cell", "output")

    def gates_of(self, x: Tensor, h: Tensor) -> Tensor:
        """The activated gates [4, N, H]: input i, forget f (sigmoids), cell candidate g (tanh), output o (sigmoid)."""
        return lstm_gates(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def forward(self, x: Tensor, state: LSTMState | None = None) -> LSTMState:
        """x [N, in], (h, c) each [N, H] (zeros if None) -> (h', c')."""
        if state is None:
            h = c = self._zeros(x)
        else:
            h, c = state
        i, f, g, o = self.gates_of(x, h).unbind(0)
        c_new = f * c + i * g
        h_new = o * ops.tanh(c_new)
        return h_new, c_new


class _StackedRNN(nn.Module):
    """Shared plumbing for GRU / LSTM: a ModuleList of cells, dropout between layers, a time loop."""

    cell_cls: type[_CellBase]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        batch_first: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.bias = bias
        self.dropout = float(dropout)
        self.cells = nn.ModuleList(
            self.cell_cls(input_size if k == 0 else hidden_size, hidden_size, bias) for k in range(num_layers)
        )
        # Applied to each layer's output except the last, in training only, as torch does.
        self.drop = Dropout(dropout)

    def zero_state(self, x_t: Tensor) -> Any:
        """The all-zero state for a batch shaped like x_t [N, F]."""
        raise NotImplementedError

    def step(self, x_t: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One time step through all layers."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """x [N, T, F] ([T, N, F] if not batch_first) -> (output [N, T, H], final state)."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        if state is None:
            state = self.zero_state(x[:, 0])
        outputs = []
        for t in range(x.shape[1]):
            out, state = self.step(x[:, t], state)
            outputs.append(out)
        y = torch.stack(outputs, dim=1)
        if not self.batch_first:
            y = y.transpose(0, 1)
        return y, state

    def step_gates(self, x_t: Tensor, state: Any) -> Tensor:
        """The activated gates of every layer for one time step: [layers, gates, N, H] (names: the cell's ``gate_names``)."""
        out = x_t
        found = []
        for k, cell in enumerate(self.cells):
            layer_state = self._layer_state(state, k)
            h = layer_state if isinstance(layer_state, Tensor) else layer_state[0]
            found.append(cast(Any, cell).gates_of(out, h))
            new = cell(out, layer_state)
            out = self._between_layers(k, new if isinstance(new, Tensor) else new[0])
        return torch.stack(found)

    def _layer_state(self, state: Any, k: int) -> Any:
        """Layer ``k``'s part of the stacked state."""
        raise NotImplementedError

    def _between_layers(self, k: int, out: Tensor) -> Tensor:
        return self.drop(out) if k < self.num_layers - 1 else out

    def load_torch_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Copy weights from a state dict of torch's own GRU/LSTM (keys ``weight_ih_l{k}`` etc.)."""
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        mapped = {f"cells.{k}.{name}": state_dict[f"{name}_l{k}"] for k in range(self.num_layers) for name in names}
        self.load_state_dict(mapped, strict=True)

    @classmethod
    def load_from_torch(cls, module: nn.RNNBase) -> _StackedRNN:
        """Build a layer with the same configuration and weights as torch's GRU/LSTM ``module``."""
        if module.bidirectional:
            raise ValueError("bidirectional recurrent layers are not supported")
        if module.proj_size:
            raise ValueError("LSTM projections (proj_size > 0) are not supported")
        layer = cls(
            module.input_size,
            module.hidden_size,
            num_layers=module.num_layers,
            dropout=module.dropout,
            batch_first=module.batch_first,
            bias=module.bias,
        )
        ref = next(module.parameters())
        layer.to(device=ref.device, dtype=ref.dtype)
        layer.load_torch_state_dict(module.state_dict())
        layer.train(module.training)
        return layer

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"dropout={self.dropout}, batch_first={self.batch_first}, bias={self.bias}"
        )


class GRU(_StackedRNN):
    """Stacked GRU; state h is [num_layers, N, H], as with torch's GRU."""

    cell_cls = GRUCell

    def zero_state(self, x_t: Tensor) -> Tensor:
        return x_t.new_zeros(self.num_layers, x_t.shape[0], self.hidden_size)

    def _layer_state(self, state: Tensor, k: int) -> Tensor:
        return state[k]

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """x_t [N, F], h [L, N, H] -> (top-layer output [N, H], h' [L, N, H])."""
        out = x_t
        hs = []
        for k, cell in enumerate(self.cells):
            h = cell(out, state[k])
            hs.append(h)
            out = self._between_layers(k, h)
        return out, torch.stack(hs, dim=0)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [N, T, F] -> (output [N, T, H], h_n [L, N, H])."""
        return super().forward(x, state)


class LSTM(_StackedRNN):
    """Stacked LSTM; state (h, c) each [num_layers, N, H], as with torch's LSTM."""

    cell_cls = LSTMCell

    def zero_state(self, x_t: Tensor) -> LSTMState:
        z = x_t.new_zeros(self.num_layers, x_t.shape[0], self.hidden_size)
        return z, z

    def _layer_state(self, state: LSTMState, k: int) -> LSTMState:
        return state[0][k], state[1][k]

    def step(self, x_t: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """x_t [N, F], (h, c) each [L, N, H] -> (top-layer output [N, H], (h', c'))."""
        h_all, c_all = state
        out = x_t
        hs, cs = [], []
        for k, cell in enumerate(self.cells):
            h, c = cell(out, (h_all[k], c_all[k]))
            hs.append(h)
            cs.append(c)
            out = self._between_layers(k, h)
        return out, (torch.stack(hs, dim=0), torch.stack(cs, dim=0))

    def forward(self, x: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """x [N, T, F] -> (output [N, T, H], (h_n, c_n) each [L, N, H])."""
        return super().forward(x, state)
