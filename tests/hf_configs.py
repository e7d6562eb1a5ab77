"""Randomly initialised small Hugging Face models of several architectures, saved as
ordinary model directories (config + safetensors), built in the test run."""

from pathlib import Path


def build(arch: str, dest: Path) -> Path:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    if arch == "bert":
        model = tf.BertModel(tf.BertConfig(vocab_size=128, max_position_embeddings=64, **small))
    elif arch == "distilbert":
        model = tf.DistilBertForSequenceClassification(
            tf.DistilBertConfig(vocab_size=128, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, num_labels=3)
        )
    elif arch == "roberta":
        model = tf.RobertaModel(tf.RobertaConfig(vocab_size=128, max_position_embeddings=72, pad_token_id=1, **small))
    elif arch == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2))
    elif arch == "vit":
        model = tf.ViTForImageClassification(tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, num_labels=5, **small))
    else:
        raise ValueError(arch)
    model.eval().save_pretrained(dest)
    return dest


ARCHS = ("bert", "distilbert", "roberta", "gpt2", "vit")
