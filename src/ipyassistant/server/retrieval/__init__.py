"""Retrieval for file search: parsing, chunking, embedding, the keyword and vector index, search."""
