"""RAG for Hélio (issue 5): a live hybrid index over documents and live records, and the answer API; see docs/rag.md."""
