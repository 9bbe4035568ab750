"""The two baselines ``mlqi-rag eval`` measures beside ours, over the same corpus in the same run:
llama-index defaults (SentenceSplitter 1024/200 over whole files, dense only, our embedding model)
and BM25 only over those same chunks. They answer "is our retrieval better than what a researcher
would get from the library's quick start?", so they are kept at the library's defaults."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .evaluation import Retrieved
from .pipeline import Pipeline


class _LlamaEmbedding:
    """Adapter factory: our on-disk embedder as a llama-index ``BaseEmbedding``."""

    @staticmethod
    def make(embedder: Any) -> Any:
        from llama_index.core.base.embeddings.base import BaseEmbedding

        class OnDiskEmbedding(BaseEmbedding):
            # The baseline is plain llama-index: the model's own vectors, no adapter.
            def _get_query_embedding(self, query: str) -> list[float]:
                return embedder.embed([query])[0].tolist()  # type: ignore[no-any-return]

            async def _aget_query_embedding(self, query: str) -> list[float]:
                return self._get_query_embedding(query)

            def _get_text_embedding(self, text: str) -> list[float]:
                return embedder.embed([text])[0].tolist()  # type: ignore[no-any-return]

            def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
                return embedder.embed(texts).tolist()  # type: ignore[no-any-return]

        return OnDiskEmbedding(model_name=embedder.name, embed_batch_size=embedder.batch_size)


class Baselines:
    """llama-index defaults and BM25 over the same 1024-token chunks of the whole files."""

    def __init__(self, pipeline: Pipeline) -> None:
        import bm25s
        from llama_index.core import Document, VectorStoreIndex
        from llama_index.core.node_parser import SentenceSplitter

        from .stores import keyword_tokens

        docs = []
        for iv in pipeline.index.interviews.values():
            text = pipeline.index.source_text(iv.id)
            docs.append(Document(text=text, id_=iv.id, metadata={"interview_id": iv.id}))
        splitter = SentenceSplitter(chunk_size=1024, chunk_overlap=200)
        self.nodes = splitter.get_nodes_from_documents(docs)
        for n in self.nodes:
            n.excluded_embed_metadata_keys = ["interview_id"]
        t0 = time.perf_counter()
        self.vindex = VectorStoreIndex(
            self.nodes, embed_model=_LlamaEmbedding.make(pipeline.embedder), show_progress=False
        )
        self.build_seconds = time.perf_counter() - t0
        self.bm25 = bm25s.BM25()
        self.bm25.index(keyword_tokens([n.get_content() for n in self.nodes]), show_progress=False)
        self._tokens = keyword_tokens

    def _item(self, node: Any) -> Retrieved:
        s, e = node.start_char_idx, node.end_char_idx
        spans = ((s, e),) if s is not None and e is not None else ()
        return Retrieved(node.metadata["interview_id"], node.get_content(), spans)

    def dense(self, question: str, k: int) -> list[Retrieved]:
        retriever = self.vindex.as_retriever(similarity_top_k=k)
        return [self._item(r.node) for r in retriever.retrieve(question)]

    def bm25_only(self, question: str, k: int) -> list[Retrieved]:
        [tokens] = self._tokens([question])
        known = [t for t in tokens if t in self.bm25.vocab_dict]
        if not known:
            return []
        scores = np.asarray(self.bm25.get_scores(known))
        order = np.argsort(-scores, kind="stable")[:k]
        return [self._item(self.nodes[i]) for i in order if scores[i] > 0]
