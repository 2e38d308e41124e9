"""RAG (issue 5): research prototype; see prototype.py and /work/notes/rag_stack.md."""
