"""curator: Ray-native curation of language-model pretraining corpora."""

__version__ = "0.1.0"
