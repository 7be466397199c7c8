"""The CT-RATE RadBERT report classifier as a labeler (docs/evaluation.md).

The CT-RATE authors label reports with a RoBERTa (RadBERT) encoder whose pooler output feeds ``Linear(768, 18)``;
a finding is present when its sigmoid is >= 0.5; reports are truncated to 512 tokens. Their checkpoint
(``RadBertClassifier.pth``) is a plain state dict of an ``nn.Module`` holding ``self.bert`` and
``self.classifier``, so its keys are ``bert.*``, ``classifier.weight`` and ``classifier.bias``. We rebuild that
module around a *local* RoBERTa directory (config + tokenizer; nothing is downloaded) and load the state dict with
``weights_only=True`` (no pickle code execution).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adaragct.constants import FINDINGS
from adaragct.errors import DataError

MAX_TOKENS = 512
THRESHOLD = 0.5


def build_radbert_module(roberta_dir: str | Path, num_classes: int = len(FINDINGS)):
    """Build the classifier module (random weights) with the original attribute names ``bert`` and ``classifier``."""
    import torch
    from transformers import AutoConfig, AutoModel

    class RadBertClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = AutoConfig.from_pretrained(str(roberta_dir), local_files_only=True)
            self.bert = AutoModel.from_config(config, add_pooling_layer=True)
            self.classifier = torch.nn.Linear(config.hidden_size, num_classes)

        def forward(self, input_ids, attention_mask):
            pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return self.classifier(pooled)

    return RadBertClassifier()


def _extract_state_dict(obj: object, path: Path) -> dict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        # Checkpoints saved from DataParallel carry a "module." prefix.
        return {k.removeprefix("module."): v for k, v in obj.items()}
    raise DataError(
        path,
        "checkpoint",
        f"holds a {type(obj).__name__}, not a state dict",
        "pass the CT-RATE RadBertClassifier.pth (a state dict with bert.* and classifier.* keys)",
    )


class RadBertLabeler:
    """CT-RATE RadBERT classifier: ``labels(texts) -> (n, 18)`` int8, batched inference under ``no_grad``.

    Args:
        checkpoint: ``RadBertClassifier.pth``.
        roberta_dir: local directory of the RoBERTa the classifier was trained on (config + tokenizer).
        device: torch device.
        batch_size: reports per forward pass.
    """

    name = "radbert"

    def __init__(
        self, checkpoint: str | Path, roberta_dir: str | Path, *, device: str = "cpu", batch_size: int = 16
    ) -> None:
        import torch
        from transformers import AutoTokenizer

        checkpoint, roberta_dir = Path(checkpoint), Path(roberta_dir)
        if not checkpoint.is_file():
            raise DataError(checkpoint, "file", "does not exist", "pass the path of RadBertClassifier.pth")
        if not (roberta_dir / "config.json").is_file():
            raise DataError(
                roberta_dir,
                "config.json",
                "missing",
                "pass a local RoBERTa directory (save_pretrained output: config + tokenizer)",
            )
        self.tokenizer = AutoTokenizer.from_pretrained(str(roberta_dir), local_files_only=True)
        self.model = build_radbert_module(roberta_dir)
        state = _extract_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), checkpoint)
        # Checkpoints from older transformers store the position-id buffer; it is not a weight.
        state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise DataError(
                checkpoint,
                "state dict keys",
                f"do not match the classifier (missing {missing[:3]}, unexpected {unexpected[:3]})",
                "use the CT-RATE RadBertClassifier.pth with the RoBERTa it was trained on",
            )
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.batch_size = batch_size

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Sigmoid outputs (n, 18)."""
        import torch

        out = np.zeros((len(texts), len(FINDINGS)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = [t if t else " " for t in texts[start : start + self.batch_size]]
                enc = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
                ).to(self.device)
                logits = self.model(enc["input_ids"], enc["attention_mask"])
                out[start : start + len(batch)] = torch.sigmoid(logits).float().cpu().numpy()
        return out

    def labels(self, texts: Sequence[str]) -> np.ndarray:
        """0/1 labels (n, 18): sigmoid >= 0.5."""
        return (self.probabilities(list(texts)) >= THRESHOLD).astype(np.int8)
