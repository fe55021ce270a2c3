"""Adapters for RAG frameworks, each an optional extra imported on its own.

- `reranker.integrations.llama_index`: `CrossEncoderRerank`, a LlamaIndex node postprocessor
  (needs `pip install llama-index-core`).
- `reranker.integrations.langchain`: `CrossEncoderCompressor`, a LangChain document compressor
  (needs `pip install langchain-core`).

Importing `reranker` or this package never imports either framework.
"""
