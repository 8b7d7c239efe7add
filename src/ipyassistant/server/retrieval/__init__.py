"""File search: parsing files, chunking their text, embedding and indexing the chunks, searching."""
