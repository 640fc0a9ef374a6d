"""Retrieval augmentation: FAISS knowledge base, retriever, fusion, alignment losses."""
