"""Randomly initialised small Hugging Face models of several architectures, saved as
ordinary model directories (config + safetensors), built in the test run."""

from pathlib import Path

SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2" / "dev.tsv"


def build(arch: str, dest: Path) -> Path:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    # decoders: weights wide enough that greedy generation depends on the context (at the usual
    # 0.02 a random decoder repeats one token, which would not test the KV cache)
    wide = {"initializer_range": 0.5} if arch in DECODERS or arch in ("llama256", "gemma3") else {}
    if arch == "bert":
        model = tf.BertModel(tf.BertConfig(vocab_size=128, max_position_embeddings=64, **small))
    elif arch == "distilbert":
        model = tf.DistilBertForSequenceClassification(
            tf.DistilBertConfig(vocab_size=128, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, num_labels=3)
        )
    elif arch == "roberta":
        model = tf.RobertaModel(tf.RobertaConfig(vocab_size=128, max_position_embeddings=72, pad_token_id=1, **small))
    elif arch == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2, **wide))
    elif arch == "llama":  # grouped-query attention (4 heads, 1 key/value head), tied embeddings
        cfg = tf.LlamaConfig(
            vocab_size=128, max_position_embeddings=64, num_key_value_heads=1, tie_word_embeddings=True, **wide, **dict(small, num_attention_heads=4)
        )
        model = tf.LlamaForCausalLM(cfg)
    elif arch == "llama256":  # one layer, dims that are multiples of 256 (k-quant and GPTQ need whole blocks)
        cfg = tf.LlamaConfig(
            vocab_size=128,
            max_position_embeddings=64,
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            **wide,
        )
        model = tf.LlamaForCausalLM(cfg)
    elif arch == "qwen2":
        cfg = tf.Qwen2Config(vocab_size=128, max_position_embeddings=64, num_key_value_heads=2, **wide, **dict(small, num_attention_heads=4))
        model = tf.Qwen2ForCausalLM(cfg)
    elif arch == "gpt_neo":
        cfg = tf.GPTNeoConfig(
            vocab_size=128,
            max_position_embeddings=64,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            attention_types=[[["global", "local"], 1]],
            window_size=16,
        )
        model = tf.GPTNeoForCausalLM(cfg)
    elif arch == "t5":  # weights scaled up (factor 4) for the same reason as the decoders' init range
        cfg = tf.T5Config(
            vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1
        )
        cfg.initializer_factor = 4.0
        model = tf.T5ForConditionalGeneration(cfg)
    elif arch == "whisper":  # 16 mel bins; 1500 source positions, so the encoder takes optimum's 3000 frames
        cfg = tf.WhisperConfig(
            vocab_size=128,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            num_mel_bins=16,
            max_source_positions=1500,
            max_target_positions=64,
            decoder_start_token_id=2,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=2,
            begin_suppress_tokens=None,
            suppress_tokens=None,
            init_std=0.3,
        )
        model = tf.WhisperForConditionalGeneration(cfg)
    elif arch == "bart":  # also a masked LM to transformers' auto classes; detected as seq2seq
        cfg = tf.BartConfig(
            vocab_size=128,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_position_embeddings=64,
            init_std=0.3,
        )
        model = tf.BartForConditionalGeneration(cfg)
    elif arch == "speech_to_text":  # its decoder-with-past graph reads the encoder's states at every step
        cfg = tf.Speech2TextConfig(
            vocab_size=128,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_source_positions=256,
            max_target_positions=64,
            input_feat_per_channel=16,
            conv_channels=32,
            init_std=0.3,
        )
        model = tf.Speech2TextForConditionalGeneration(cfg)
    elif arch == "gemma3":  # vision-language: the language model's settings are nested in text_config
        text = dict(vocab_size=128, max_position_embeddings=64, num_key_value_heads=1, head_dim=8, **wide, **dict(small, num_attention_heads=4))
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
        cfg = tf.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, initializer_range=0.5)
        model = tf.Gemma3ForConditionalGeneration(cfg)
    elif arch == "sam":  # optimum writes a vision encoder and a prompt-encoder/mask-decoder graph
        vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=128, global_attn_indexes=[1])
        model = tf.SamModel(tf.SamConfig(vision_config=vision, mask_decoder_config=dict(num_hidden_layers=2)))
    elif arch == "wav2vec2-ctc":  # a CTC speech model: automatic-speech-recognition without past
        cfg = tf.Wav2Vec2Config(
            vocab_size=32,
            conv_dim=(32, 32),
            conv_stride=(5, 4),
            conv_kernel=(8, 4),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            **dict(small, intermediate_size=37),
        )
        model = tf.Wav2Vec2ForCTC(cfg)
    elif arch == "deit":  # its auto mapping lists it with the with-teacher variant; optimum's inference misses it
        model = tf.DeiTForImageClassification(tf.DeiTConfig(image_size=32, patch_size=8, num_labels=3, **small))
    elif arch == "clip":  # two towers: text and image inputs together, no last_hidden_state
        text = dict(small, vocab_size=128, max_position_embeddings=64)
        model = tf.CLIPModel(tf.CLIPConfig(text_config=text, vision_config=dict(small, image_size=32, patch_size=8), projection_dim=16))
    elif arch == "ast":  # a spectrogram classifier: input_values are (batch, frames, mel bins), not audio samples
        model = tf.ASTForAudioClassification(tf.ASTConfig(max_length=64, num_mel_bins=16, num_labels=4, **small))
    elif arch == "vit":
        model = tf.ViTForImageClassification(tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, num_labels=5, **small))
    else:
        raise ValueError(arch)
    model.eval().save_pretrained(dest)
    if arch in DECODERS or arch in (
        "llama256",
        "t5",
    ):  # a real tokenizer, for perplexity on real text: BPE with the model's 128 ids, trained on SST-2 dev
        from edgedeploy.compress.lm_tokenizer import train_tokenizer
        from edgedeploy.data.datasets import read_texts

        train_tokenizer(read_texts(SST2_DEV, "text", 2000), 128, dest)
    return dest


ARCHS = ("bert", "distilbert", "roberta", "gpt2", "vit")
DECODERS = ("llama", "qwen2", "gpt_neo", "gpt2")  # exported with past and validated by generated tokens
SEQ2SEQ = ("t5", "whisper")  # three graphs (encoder, decoder, decoder-with-past), each validated
