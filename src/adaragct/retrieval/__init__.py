"""Retrieval: text encoders, the per-organ sentence bank, image neighbours, context precompute and retrievers.

Modules, one responsibility each:
    encoders    -- the ``TextEncoder`` protocol and its implementations (HF directory, sentence-transformers,
                   the packaged offline MiniLM)
    visd_boost  -- the release's probe encoder: ViSD-Boost's text tower from its E2E checkpoint (encoder=visd_boost)
    cache       -- on-disk embedding cache keyed by encoder id and sentence text
    bank        -- ``SentenceBank``: sentences + per-organ FAISS indexes + a checksummed manifest
    neighbours  -- per-organ image neighbours (top-20 training volumes, same patient excluded)
    mmr         -- BLEU-2 redundancy (the release's or smoothed) and maximal-marginal-relevance selection
    retrievers  -- the ``Retriever`` protocol, ``none`` / ``oracle`` / ``adaptive`` / ``text2text`` / ``corrupt``,
                   ``build_retriever``
    global_context -- the release's global context: reports of the top whole-CT neighbours before the prompt
    contexts    -- oracle and retrieved context files for phase=rag training (release layout)
    quality     -- retrieval-quality figures printed by ``python -m adaragct.index``

Heavy libraries (torch, transformers, faiss) are imported inside the functions that need them, so importing this
package is cheap.
"""
