"""Model families: importing this package registers every model with the registry."""

from zoo_train.models import lenet, resnet_cifar, scratch_cnn, simple_cnn  # noqa: F401,E402
from zoo_train.models import char_lstm, dcgan, dna_rnn, gpt, seq2seq, seq_classifier  # noqa: F401,E402
