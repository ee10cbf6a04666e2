"""Visualise: any sentence-transformers model by folder, offline (HF_HUB_OFFLINE=1).

A tiny random BERT with an offline-trained WordPiece tokenizer, saved as a sentence-transformers
folder (Transformer + mean pooling), built once per module. Kept apart from test_map.py: importing
torch and sentence-transformers costs tens of seconds on a busy 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import embeddings
from core.cli import main
from core.steps.visualise import mapping
from core.store import Store
from tests.minidata import import_mini
from tests.tiny_models import CORPUS


def build_tiny_st(folder: Path) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as stm
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.NFC()
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(CORPUS * 5, trainers.WordPieceTrainer(vocab_size=400, special_tokens=special))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                      special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    hf = folder / "hf"
    BertModel(config).save_pretrained(hf)
    tok.save_pretrained(hf)
    word = stm.Transformer(str(hf), max_seq_length=128)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = stm.Pooling(dim(), pooling_mode="mean")
    out = folder / "tiny-st"
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory) -> Path:
    return build_tiny_st(tmp_path_factory.mktemp("st"))


def test_sentence_transformers_folder_offline(tiny_st, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    db = tmp_path / "w.duckdb"
    s = Store(db)
    import_mini(s, tmp_path, n=5)
    texts = [t for it in mapping.items(s, "mini") for t in it["parts"]]  # own text and passage apart
    s.close()
    args = ["--db", str(db), "map", "embed", "--dataset", "mini", "--embedder", str(tiny_st), "--json"]
    capsys.readouterr()
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first == {"dataset": "mini", "embedder": str(tiny_st.resolve()), "items": 5, "texts": 10, "computed": 10,
                     "cached": 0}
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 0
    # the stored vectors are the model's own normalised embeddings (no "query: " prefix: not an e5 model)
    from sentence_transformers import SentenceTransformer

    direct = SentenceTransformer(str(tiny_st), device="cpu").encode(texts, normalize_embeddings=True)
    s = Store(db)
    stored = embeddings.vectors(s, str(tiny_st.resolve()), texts)
    s.close()
    assert stored.shape == (10, 32)
    assert np.allclose(stored, direct, atol=1e-5)
    model = embeddings.load(str(tiny_st))
    assert model.prefix == "" and model.dim == 32


def test_e5_named_models_get_the_query_prefix(tiny_st, tmp_path):
    """A sentence-transformers model whose name says e5 is fed "query: " + text."""
    e5_named = tmp_path / "my-e5-small"
    import shutil

    shutil.copytree(tiny_st, e5_named)
    model = embeddings.load(str(e5_named))
    assert model.prefix == "query: "
    plain = embeddings.load(str(tiny_st))
    t = "윗글의 내용과 일치하지 않는 것은?"
    assert float(model.encode([t])[0] @ plain.encode(["query: " + t])[0]) == pytest.approx(1.0, abs=1e-5)
