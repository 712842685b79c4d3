"""From-scratch layers: convolution, linear, activations, pooling and recurrent cells
written with plain tensor operations (no torch built-in layer modules or conv kernels).

Parameter names and shapes follow torch's own layers, so weights copy across
(``load_state_dict`` for the feed-forward layers and cells, ``GRU.load_from_torch`` /
``LSTM.load_from_torch`` for the stacked recurrent layers).
"""

from . import functional
from .layers import Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh
from .recurrent import GRU, LSTM, GRUCell, LSTMCell, LSTMState, gru_gates, lstm_gates, torch_layer_weights

__all__ = [
    "GRU",
    "LSTM",
    "Conv2D",
    "Dropout",
    "Flatten",
    "GRUCell",
    "LSTMCell",
    "LSTMState",
    "Linear",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "functional",
    "gru_gates",
    "lstm_gates",
    "torch_layer_weights",
]
