"""Fixed vocabularies shared by every stage: findings, organs, visual slots and special tokens (docs/formats.md, docs/method.md#model-and-training)."""

from __future__ import annotations

# The 18 CT-RATE findings in the exact column order of the labels CSV (docs/formats.md#ct-rate-layout).
FINDINGS: tuple[str, ...] = (
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
)

# The paper's organ set; "other" collects sentences about none of the four indexed organs.
ORGANS: tuple[str, ...] = ("lung", "heart", "esophagus", "aorta", "other")

# RadGenome-ChestCT regions (optional, finer organ set).
RADGENOME_ORGANS: tuple[str, ...] = (
    "lung",
    "trachea and bronchi",
    "mediastinum",
    "heart",
    "esophagus",
    "pleura",
    "bone",
    "thyroid",
    "breast",
    "abdomen",
    "other",
)

# Finding -> organ (docs/formats.md#organs-and-sentences).
FINDING_TO_ORGAN: dict[str, str] = {
    "Medical material": "other",
    "Arterial wall calcification": "aorta",
    "Cardiomegaly": "heart",
    "Pericardial effusion": "heart",
    "Coronary artery wall calcification": "heart",
    "Hiatal hernia": "esophagus",
    "Lymphadenopathy": "other",
    "Emphysema": "lung",
    "Atelectasis": "lung",
    "Lung nodule": "lung",
    "Lung opacity": "lung",
    "Pulmonary fibrotic sequela": "lung",
    "Pleural effusion": "lung",
    "Mosaic attenuation pattern": "lung",
    "Peribronchial thickening": "lung",
    "Consolidation": "lung",
    "Bronchiectasis": "lung",
    "Interlobular septal thickening": "lung",
}

# Visual slots in the order the projector consumes them (docs/method.md#training-batches): whole volume first, then organs.
VISUAL_SLOTS: tuple[str, ...] = ("whole_ct", "lung", "heart", "esophagus", "aorta")
ORGAN_SLOTS: tuple[str, ...] = VISUAL_SLOTS[1:]

# Special tokens (docs/method.md#model-and-training): one placeholder per visual slot, the task token, the context delimiters and [RAG].
SLOT_TOKENS: dict[str, str] = {slot: f"<{slot}>" for slot in VISUAL_SLOTS}
TASK_TOKEN = "<report_generation>"
RET_START = "<|ret_start|>"
RET_END = "<|ret_end|>"
RAG_TOKEN = "[RAG]"
SPECIAL_TOKENS: tuple[str, ...] = (*SLOT_TOKENS.values(), TASK_TOKEN, RET_START, RET_END, RAG_TOKEN)

# Label value of a position that is not trained (the prompt, the injected context span, padding): the
# ``ignore_index`` of torch's cross-entropy, shared by the datamodule that writes labels and the loss that reads them.
IGNORE_INDEX = -100
