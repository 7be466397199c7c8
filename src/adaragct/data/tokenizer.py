"""The tiny model's tokenizer: a byte-level BPE trained on the corpus, saved as a transformers tokenizer (docs/method.md#model-and-training).

``model=tiny`` is a random-init Llama, so its tokenizer is trained here from the training reports: byte-level
BPE (any text encodes, nothing is ever unknown) with the project's special tokens (visual slot placeholders,
task token, context delimiters, ``[RAG]``) and Llama-3-like chat markers as single, never-split tokens. The
result is a :class:`transformers.PreTrainedTokenizerFast` directory that ``AutoTokenizer.from_pretrained(dir)``
loads offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from adaragct.constants import SPECIAL_TOKENS

BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|eot_id|>"  # ends every chat turn, including the target report
PAD_TOKEN = "<|pad|>"
CHAT_TOKENS: tuple[str, ...] = (BOS_TOKEN, "<|start_header_id|>", "<|end_header_id|>", EOS_TOKEN, PAD_TOKEN)

# Llama-3 layout, so prompts built with apply_chat_template look like the 8B model's.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path, min_frequency: int = 2):
    """Train a byte-level BPE on ``texts`` and save it as a fast tokenizer directory at ``out_dir``.

    Args:
        texts: the training corpus (the cohort's train reports; never validation text).
        vocab_size: target vocabulary size including the 256 byte symbols and the special tokens.
        out_dir: directory written with ``save_pretrained`` (tokenizer.json, tokenizer_config.json, ...).
        min_frequency: a merge needs this many occurrences (keeps one-off typos out of the vocabulary).

    Returns:
        The :class:`transformers.PreTrainedTokenizerFast`, with bos/eos/pad set and the special tokens added.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [*CHAT_TOKENS, *SPECIAL_TOKENS]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in specials if t not in (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)],
        model_max_length=4096,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast
