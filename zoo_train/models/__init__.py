"""Model families: importing this package registers every model with the registry."""

from zoo_train.models import char_lstm, dcgan, dna_rnn, gpt, lenet, resnet_cifar, scratch_cnn, seq2seq, seq_classifier, simple_cnn  # noqa: F401  # noqa: F401,E402
