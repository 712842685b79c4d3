"""Model families: importing this package registers every model with the registry."""

from zoo_train.models import (  # noqa: F401
    char_lstm,
    dcgan,
    dna_rnn,
    gpt,
    lenet,
    mobilenet_v3,
    resnet,
    resnet_cifar,
    scratch_cnn,
    seq2seq,
    seq_classifier,
    simple_cnn,
)
