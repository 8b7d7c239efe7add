"""File search: a vector store's files made searchable, and searched.

A file goes through five stages, one module each:

- **parse** (:mod:`.parsing`): the uploaded bytes to plain text, by file type (text, Markdown,
  code, HTML, JSON, CSV, PDF, DOCX, notebooks); files that cannot be read fail with
  ``UnsupportedFile`` or ``InvalidFile``, which become the file's ``last_error``;
- **chunk** (:mod:`.chunking`): the text to overlapping windows of tokens (``auto``: 800 tokens
  with 400 shared; ``static``: the store's sizes), counted offline with the default embedder's
  tokenizer, cut at paragraph, sentence or word boundaries where the window allows;
- **embed** (:mod:`.embedders`): each chunk to a normalised vector, by the store's embedder
  (offline ``wordllama`` by default, or any OpenAI-compatible ``/embeddings`` endpoint);
- **index** (:mod:`.index`): the chunks, their vectors and the file's attributes written to the
  database with a keyword index beside them (SQLite FTS5, or PostgreSQL full-text search);
- **search** (:mod:`.search`): queries answered from both rankings, keyword (BM25) and dense,
  fused by reciprocal rank, filtered by attributes, cut by score and count.

Parsing and chunking are pure and synchronous (callers run them in a thread); the indexing job
(:mod:`.indexer`) strings the stages together for each file, and the run engine's ``file_search``
tool and the ``vector_stores/{id}/search`` endpoint call :func:`.search.search`.
"""
